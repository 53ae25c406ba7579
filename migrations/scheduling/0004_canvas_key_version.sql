-- Raised when canvas reports that an earlier create under the appointment's key has an unknown
-- outcome and its own search found no appointment: the next create goes under a fresh key.
alter table appointments add column canvas_key_version integer not null default 0;
