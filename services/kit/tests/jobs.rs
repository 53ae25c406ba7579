//! The durable-work runner against real PostgreSQL: jobs run once per request, again when asked
//! while running, on the retry schedule until dead, exactly once with several runners, and a holder
//! stopped at a failpoint leaves its job to another runner once the lease runs out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use era_kit::{
    jobs::{self, BoxFuture, FailAt, Failpoint, Failpoints, Handler, Job, Outcome, Queue, Runner, RunnerConfig},
    testing::TestDb,
};

/// Records every attempt; answers what `script` says for the key's nth attempt (Done after it).
#[derive(Default)]
struct Recorder {
    runs: Mutex<HashMap<String, u32>>,
    script: HashMap<String, Vec<Outcome>>,
    hold: Option<Duration>,
    failpoints: Option<Arc<Failpoints>>,
}

impl Recorder {
    fn count(&self, key: &str) -> u32 {
        self.runs.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

impl Handler for Recorder {
    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Some(f) = &self.failpoints {
                if f.check("work", FailAt::BeforeCall).is_err() {
                    return Outcome::Abandoned;
                }
            }
            let n = {
                let mut runs = self.runs.lock().unwrap();
                let n = runs.entry(job.key.clone()).or_default();
                *n += 1;
                *n
            };
            if let Some(hold) = self.hold {
                tokio::time::sleep(hold).await;
            }
            self.script
                .get(&job.key)
                .and_then(|s| s.get(n as usize - 1).cloned())
                .unwrap_or(Outcome::Done)
        })
    }
}

fn quick() -> RunnerConfig {
    RunnerConfig {
        lease: Duration::from_secs(2),
        poll: Duration::from_millis(20),
        batch: 8,
        schedule: vec![Duration::from_millis(10), Duration::from_millis(10)],
    }
}

async fn queue() -> (TestDb, Queue) {
    let db = TestDb::empty().await;
    jobs::install(&db.pool).await.unwrap();
    // Installing twice (a second replica starting) changes nothing.
    jobs::install(&db.pool).await.unwrap();
    let queue = Queue::new(db.pool.clone());
    (db, queue)
}

async fn request(queue: &Queue, key: &str) {
    let mut conn = queue.pool().acquire().await.unwrap();
    queue.request(&mut conn, "test", key, None).await.unwrap();
    queue.wake();
}

async fn wait_status(queue: &Queue, key: &str, status: &str) -> jobs::JobState {
    for _ in 0..500 {
        if let Some(j) = queue.get(key).await.unwrap() {
            if j.status == status {
                return j;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {key} never became {status}: {:?}", queue.get(key).await.unwrap());
}

fn spawn(queue: &Queue, handler: Arc<Recorder>, failpoints: Arc<Failpoints>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(Runner::new(queue.clone(), handler, quick(), failpoints).run())
}

#[tokio::test]
async fn a_job_runs_once_per_request_and_again_when_asked_again() {
    let (_db, queue) = queue().await;
    let handler = Arc::new(Recorder::default());
    let runner = spawn(&queue, handler.clone(), Arc::default());
    request(&queue, "a").await;
    wait_status(&queue, "a", "done").await;
    assert_eq!(handler.count("a"), 1);
    request(&queue, "a").await;
    let done = wait_status(&queue, "a", "done").await;
    // Runs only when asked: a done job's row says done, and it ran twice for two requests.
    while handler.count("a") < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handler.count("a"), 2);
    assert_eq!(done.attempts, 1, "attempts count afresh for each request");
    runner.abort();
}

#[tokio::test]
async fn a_request_while_running_runs_the_job_once_more() {
    let (_db, queue) = queue().await;
    let handler = Arc::new(Recorder {
        hold: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    let runner = spawn(&queue, handler.clone(), Arc::default());
    request(&queue, "b").await;
    wait_status(&queue, "b", "running").await;
    request(&queue, "b").await;
    request(&queue, "b").await;
    assert!(queue.get("b").await.unwrap().unwrap().rerun);
    // Two requests while running fold into one more run.
    for _ in 0..200 {
        if handler.count("b") == 2 && queue.get("b").await.unwrap().unwrap().status == "done" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handler.count("b"), 2);
    assert_eq!(queue.get("b").await.unwrap().unwrap().status, "done");
    runner.abort();
}

#[tokio::test]
async fn retries_follow_the_schedule_and_the_job_is_dead_past_its_end() {
    let (_db, queue) = queue().await;
    let handler = Arc::new(Recorder {
        script: HashMap::from([
            (
                "c".to_owned(),
                vec![Outcome::Retry("down".into()), Outcome::Retry("down".into())],
            ),
            ("d".to_owned(), vec![Outcome::Retry("down".into()); 3]),
            ("e".to_owned(), vec![Outcome::Dead("refused".into())]),
        ]),
        ..Default::default()
    });
    let runner = spawn(&queue, handler.clone(), Arc::default());
    for key in ["c", "d", "e"] {
        request(&queue, key).await;
    }
    let c = wait_status(&queue, "c", "done").await;
    assert_eq!((handler.count("c"), c.attempts), (3, 3));
    let d = wait_status(&queue, "d", "dead").await;
    assert_eq!(handler.count("d"), 3, "two retries on the schedule, then dead");
    assert_eq!(d.last_error.as_deref(), Some("down"));
    let e = wait_status(&queue, "e", "dead").await;
    assert_eq!((handler.count("e"), e.last_error.as_deref()), (1, Some("refused")));
    // An operator asking again revives a dead job with fresh attempts.
    request(&queue, "e").await;
    wait_status(&queue, "e", "done").await;
    assert_eq!(handler.count("e"), 2);
    runner.abort();
}

#[tokio::test]
async fn two_runners_run_every_job_exactly_once() {
    let (_db, queue) = queue().await;
    let handler = Arc::new(Recorder {
        hold: Some(Duration::from_millis(5)),
        ..Default::default()
    });
    let runners = [
        spawn(&queue, handler.clone(), Arc::default()),
        spawn(&queue, handler.clone(), Arc::default()),
    ];
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    for key in &keys {
        request(&queue, key).await;
    }
    for key in &keys {
        wait_status(&queue, key, "done").await;
    }
    for key in &keys {
        assert_eq!(handler.count(key), 1, "{key} ran once");
    }
    for r in runners {
        r.abort();
    }
}

#[tokio::test]
async fn a_replica_stopped_at_a_failpoint_leaves_the_job_to_another_after_the_lease() {
    let (_db, queue) = queue().await;
    let crashed = Arc::new(Failpoints::new(Some(Failpoint {
        step: "work".into(),
        at: FailAt::BeforeCall,
    })));
    let first = Arc::new(Recorder {
        failpoints: Some(crashed.clone()),
        ..Default::default()
    });
    let dead = spawn(&queue, first.clone(), crashed.clone());
    request(&queue, "f").await;
    let held = wait_status(&queue, "f", "running").await;
    dead.await.unwrap();
    assert!(crashed.halted());
    assert_eq!(first.count("f"), 0, "the crashed replica did none of the work");
    // Still held by the dead replica until its lease runs out; then another takes it.
    let second = Arc::new(Recorder::default());
    let alive = spawn(&queue, second.clone(), Arc::default());
    let done = wait_status(&queue, "f", "done").await;
    assert_eq!(second.count("f"), 1);
    assert!(
        done.lease_generation > held.lease_generation,
        "the new claim raised the fence"
    );
    alive.abort();
}
