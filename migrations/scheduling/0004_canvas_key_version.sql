-- Raised when canvas reports that an earlier create under the appointment's key has an unknown
-- outcome and its own search found no appointment: the next create goes under a fresh key.
alter table appointments add column canvas_key_version integer not null default 0;
-- The times the first create under the current key was sent with: a retry sends the same request
-- (canvas compares it with the first), and a move since is made by an update afterwards.
alter table appointments add column canvas_sent_start timestamptz, add column canvas_sent_end timestamptz;
-- Raised by every move: the patient's confirmation and reminder for each time are keyed by it, so
-- moving back to an earlier time is announced again.
alter table appointments add column schedule_version integer not null default 0;

-- A practitioner's held time may not overlap another hold, whatever the lengths (btree_gist is a
-- trusted extension: the database owner may create it).
create extension if not exists btree_gist;
drop index appointments_held_slot;
alter table appointments add constraint appointments_held_slot
    exclude using gist (practitioner_id with =, tstzrange(start_time, end_time) with &&)
    where (status in ('pending', 'booked'));
