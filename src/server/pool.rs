//! The sessions an apply works over: the admin session, which holds the
//! advisory lock from before the catalog is read until the end, plus a small,
//! bounded number of extra sessions opened for the length of one apply.
//!
//! Why: almost all of a first apply is the server's `CREATE DATABASE`
//! (copying the template, then a checkpoint or a WAL flush), and the server
//! can run several at once; one session can only wait for each in turn. The
//! extra sessions are opened exactly as the admin session is
//! ([`db::connect`]: the same host, TLS mode, credentials, timeouts and
//! session settings), only when there is work for more than one of them, and
//! closed when the apply ends. An apply that is stopped (SIGTERM, a lost
//! server) drops them with it: the statements in flight are abandoned with
//! their connections, as the admin session's are, and the next run converges.
//!
//! How many: `--jobs` (the default, [`DEFAULT_JOBS`], was chosen by
//! `scripts/bench-first-apply`; see docs/performance.md), never more than the
//! server can spare ([`Capacity::spare`]), and none under `--jobs 1` or on a
//! server whose connection slots are nearly used up: the work then runs on
//! the admin session alone, one statement after another, as before.

use std::future::Future;
use std::sync::Mutex;

use futures_util::future::{join_all, try_join_all};
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::input::conninfo::ConnSettings;
use crate::server::db::{self, DbError};

/// Sessions (the admin one included) an apply works over unless `--jobs`
/// says otherwise. Measured on a 2-core machine (docs/performance.md): 4
/// sessions take a durable server's first apply of 200 tenants to about half
/// the time of one session; more add little there and cost the server memory
/// and connection slots.
pub const DEFAULT_JOBS: usize = 4;

/// The largest `--jobs`: beyond this a server spends its time on contention.
pub const MAX_JOBS: usize = 64;

/// Connection slots left to others, whatever the server's size: pgtenant never
/// takes the last ones, which applications (and an operator's psql) need more.
const SLOTS_KEPT_FREE: u32 = 2;

/// What the server says about its connection slots, read on the admin session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub max_connections: u32,
    /// `superuser_reserved_connections` plus (16+) `reserved_connections`:
    /// slots pgtenant never counts on, even as a superuser.
    pub reserved: u32,
    /// Client sessions open now, the admin session included.
    pub in_use: u32,
    /// The admin role's `CONNECTION LIMIT` minus its sessions open now, when
    /// it has a limit.
    pub role_left: Option<u32>,
    /// The maintenance database's `CONNECTION LIMIT` minus its sessions open
    /// now, when it has a limit.
    pub database_left: Option<u32>,
}

impl Capacity {
    /// How many extra sessions the server can spare: half of the free
    /// ordinary slots once [`SLOTS_KEPT_FREE`] are set aside, so that a busy
    /// server keeps room for its applications, and within the admin role's
    /// and the database's own limits.
    pub fn spare(&self) -> usize {
        let free = self
            .max_connections
            .saturating_sub(self.reserved)
            .saturating_sub(self.in_use);
        let mut spare = free.saturating_sub(SLOTS_KEPT_FREE) / 2;
        for limit in [self.role_left, self.database_left].into_iter().flatten() {
            spare = spare.min(limit);
        }
        spare as usize
    }
}

/// Extra sessions to open: `jobs` counts the admin session; no more than the
/// server can spare, and no more than the work needs (`items` pieces of work
/// that may run at once).
pub fn extra_sessions(jobs: usize, capacity: &Capacity, items: usize) -> usize {
    jobs.saturating_sub(1)
        .min(capacity.spare())
        .min(items.saturating_sub(1))
}

/// Short sessions into tenant databases that may be open at once while the
/// catalog is read (schema `public` on 14 and older, objects of other roles
/// in a database whose owner differs): the same bound as the extra sessions
/// of an apply, since the admin session stays open meanwhile, but never
/// fewer than one (a database can only be read from inside it).
pub fn short_sessions_within(jobs: usize, capacity: &Capacity, items: usize) -> usize {
    jobs.saturating_sub(1)
        .min(capacity.spare())
        .min(items)
        .max(1)
}

/// [`short_sessions_within`] for this server now: reads its connection slots
/// only when more than one database is to be read and `jobs` allows more than
/// one session.
pub async fn short_sessions(admin: &Client, jobs: usize, items: usize) -> Result<usize, DbError> {
    if jobs <= 2 || items <= 1 {
        return Ok(1);
    }
    let capacity = capacity(admin).await?;
    Ok(short_sessions_within(jobs, &capacity, items))
}

const CAPACITY: &str = "\
SELECT pg_catalog.current_setting('max_connections')::pg_catalog.int4,
       pg_catalog.current_setting('superuser_reserved_connections')::pg_catalog.int4
         + COALESCE(NULLIF(pg_catalog.current_setting('reserved_connections', true), ''), '0')::pg_catalog.int4,
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_type IS NULL OR a.backend_type OPERATOR(pg_catalog.=) 'client backend')::pg_catalog.int4,
       (SELECT r.rolconnlimit FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER),
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.usename OPERATOR(pg_catalog.=) CURRENT_USER)::pg_catalog.int4,
       (SELECT d.datconnlimit FROM pg_catalog.pg_database d
         WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()),
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity a
         WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())::pg_catalog.int4";

/// Reads the server's connection slots. `pg_stat_activity` shows every
/// session's type, user and database to any role, so a non-superuser admin
/// counts the same sessions a superuser does.
pub async fn capacity(client: &Client) -> Result<Capacity, DbError> {
    let row = client
        .query_one(CAPACITY, &[])
        .await
        .map_err(|e| DbError::query("read the server's connection slots", e))?;
    let n = |i: usize| u32::try_from(row.get::<_, i32>(i)).unwrap_or(0);
    // A limit of -1 is no limit.
    let left = |limit: Option<i32>, used: u32| {
        limit
            .and_then(|l| u32::try_from(l).ok())
            .map(|l| l.saturating_sub(used))
    };
    Ok(Capacity {
        max_connections: n(0),
        reserved: n(1),
        in_use: n(2),
        role_left: left(row.get(3), n(4)),
        database_left: left(row.get(5), n(6)),
    })
}

/// The admin session and the extra sessions of one apply.
pub struct Sessions<'a> {
    admin: &'a Client,
    extra: Vec<Client>,
}

impl<'a> Sessions<'a> {
    /// Just the admin session: the work runs one piece after another.
    pub fn admin_only(admin: &'a Client) -> Self {
        Sessions {
            admin,
            extra: Vec::new(),
        }
    }

    /// The admin session plus up to `jobs - 1` extra sessions, as many as the
    /// server can spare and `items` pieces of work need. An extra session
    /// that cannot be opened (the slots filled up meanwhile, say) is done
    /// without: the work goes on over fewer.
    pub async fn open(
        admin: &'a Client,
        settings: &ConnSettings,
        jobs: usize,
        items: usize,
    ) -> Result<Self, DbError> {
        let mut sessions = Sessions::admin_only(admin);
        if jobs <= 1 || items <= 1 {
            return Ok(sessions);
        }
        let capacity = capacity(admin).await?;
        let wanted = extra_sessions(jobs, &capacity, items);
        let opened = join_all((0..wanted).map(|_| db::connect(settings, None))).await;
        let mut failure = None;
        for result in opened {
            match result {
                Ok(client) => sessions.extra.push(client),
                Err(e) => failure = Some(e),
            }
        }
        let size = sessions.size();
        let plural = if size == 1 { "" } else { "s" };
        let asked = jobs.min(items);
        if let Some(e) = failure {
            // The work goes on over the sessions that opened; the admin
            // session alone is enough.
            warn!(
                sessions = size,
                jobs,
                error = %e,
                "applying over {size} session{plural} instead of {asked}: an extra session \
                 could not be opened: {e}"
            );
        } else if size < asked {
            info!(
                sessions = size,
                jobs,
                max_connections = capacity.max_connections,
                reserved = capacity.reserved,
                in_use = capacity.in_use,
                "applying over {size} session{plural} instead of {asked}: the server has few free \
                 connection slots ({} in use of max_connections {}, {} reserved)",
                capacity.in_use,
                capacity.max_connections,
                capacity.reserved
            );
        } else {
            info!(sessions = size, jobs, "applying over {size} sessions");
        }
        Ok(sessions)
    }

    /// How many sessions work at once, the admin session included.
    pub fn size(&self) -> usize {
        1 + self.extra.len()
    }

    fn clients(&self) -> impl Iterator<Item = &Client> {
        std::iter::once(self.admin).chain(self.extra.iter())
    }

    /// Runs `f` on every item, each on whichever session is free next, and
    /// returns the results in the order of `items`. An `Err` from `f` means
    /// the work cannot go on (a lost connection): it is returned at once, and
    /// the work in flight on the other sessions is abandoned with the
    /// returned future. A piece of work that fails on its own must return
    /// `Ok` with its failure inside, so that the others go on.
    pub async fn map<I, T, F, Fut>(&'a self, items: Vec<I>, f: F) -> Result<Vec<T>, DbError>
    where
        I: Send,
        T: Send,
        F: Fn(&'a Client, I) -> Fut,
        Fut: Future<Output = Result<T, DbError>>,
    {
        let n = items.len();
        let queue: Mutex<std::vec::IntoIter<(usize, I)>> = Mutex::new(
            items
                .into_iter()
                .enumerate()
                .collect::<Vec<_>>()
                .into_iter(),
        );
        let results: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
        let (queue, results, f) = (&queue, &results, &f);
        let workers = self.clients().take(n.max(1)).map(|client| async move {
            loop {
                let Some((i, item)) = queue.lock().expect("queue lock").next() else {
                    return Ok::<(), DbError>(());
                };
                let out = f(client, item).await?;
                results.lock().expect("results lock")[i] = Some(out);
            }
        });
        try_join_all(workers).await?;
        let results = std::mem::take(&mut *results.lock().expect("results lock"));
        Ok(results
            .into_iter()
            .map(|r| r.expect("every item was worked on"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(max: u32, reserved: u32, in_use: u32) -> Capacity {
        Capacity {
            max_connections: max,
            reserved,
            in_use,
            role_left: None,
            database_left: None,
        }
    }

    #[test]
    fn spare_keeps_slots_and_half_of_the_rest_for_others() {
        // 100 slots, 3 reserved, 1 in use: 96 free, 2 kept, half of 94.
        assert_eq!(capacity(100, 3, 1).spare(), 47);
        // Nearly full: nothing to spare.
        assert_eq!(capacity(100, 3, 95).spare(), 0);
        assert_eq!(capacity(100, 3, 94).spare(), 0);
        assert_eq!(capacity(100, 3, 93).spare(), 1);
        // Over-full (superusers in reserved slots) does not underflow.
        assert_eq!(capacity(10, 3, 12).spare(), 0);
    }

    #[test]
    fn spare_respects_role_and_database_limits() {
        let mut c = capacity(100, 3, 1);
        c.role_left = Some(2);
        assert_eq!(c.spare(), 2);
        c.database_left = Some(0);
        assert_eq!(c.spare(), 0);
    }

    #[test]
    fn extra_sessions_bounded_by_jobs_capacity_and_work() {
        let roomy = capacity(100, 3, 1);
        assert_eq!(extra_sessions(4, &roomy, 200), 3);
        assert_eq!(extra_sessions(1, &roomy, 200), 0, "--jobs 1: admin only");
        assert_eq!(extra_sessions(4, &roomy, 2), 1, "no more than the work");
        assert_eq!(extra_sessions(4, &roomy, 1), 0);
        assert_eq!(extra_sessions(4, &roomy, 0), 0);
        assert_eq!(extra_sessions(64, &capacity(20, 3, 5), 200), 5);
        assert_eq!(
            extra_sessions(4, &capacity(100, 3, 95), 200),
            0,
            "full server"
        );
    }

    #[test]
    fn short_sessions_bounded_like_extra_sessions_but_at_least_one() {
        let roomy = capacity(100, 3, 1);
        assert_eq!(short_sessions_within(4, &roomy, 200), 3);
        assert_eq!(short_sessions_within(1, &roomy, 200), 1, "--jobs 1");
        assert_eq!(short_sessions_within(2, &roomy, 200), 1);
        assert_eq!(
            short_sessions_within(4, &roomy, 2),
            2,
            "no more than the work"
        );
        assert_eq!(short_sessions_within(64, &capacity(20, 3, 5), 200), 5);
        assert_eq!(
            short_sessions_within(4, &capacity(100, 3, 95), 200),
            1,
            "full server: one at a time"
        );
    }
}
