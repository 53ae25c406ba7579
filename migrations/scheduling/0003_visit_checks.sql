-- When the visit-status worker last read a begun visit from Canvas: each round takes the visits read
-- longest ago, so visits Canvas never settles cannot crowd out the rest.
alter table appointments add column status_checked_at timestamptz;
drop index appointments_to_settle;
create index appointments_to_settle on appointments (status_checked_at nulls first) where status = 'booked';
