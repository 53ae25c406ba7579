-- A client's retry of an approval (same Idempotency-Key) finds the run it started, in any status.
create index orchestration_runs_by_key on orchestration_runs (task_id, idempotency_key)
    where idempotency_key <> '';
