-- How many times an order was sent to its pharmacy. Each resubmission follows a lookup that found
-- nothing; a pharmacy that keeps losing answers and never shows the order stops the run for review
-- instead of receiving submission after submission.
alter table pharmacy_orders add column submit_attempts integer not null default 0;
