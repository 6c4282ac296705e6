// Package jobs runs the batch side on a schedule (DESIGN §2, jobs):
// recompute, merge, retention and on-demand backfill, each a Job with a cron
// schedule. Several `lambdalake jobs` processes may run against one Redis;
// a Lease (a Redis lock with a lease, renewal and a fencing token) makes
// each scheduled run happen once, and a runner that loses its lease has its
// job's context cancelled so it stops writing. Every run is recorded in a
// capped Redis list, read by `lambdalake jobs status` and GET /v1/jobs.
//
// Recompute is shared by the runners (Job.Shared): every runner takes part
// in each run, and the run's work is split by (view, hour), each hour
// computed under its own item lease (ItemLeaser: a Redis lock with renewal
// and a fencing token, like the job leases), taken without waiting — a
// held hour is left to its holder. N runners compute N hours at once, no
// hour is computed by two at once, and a runner killed mid-hour leaves its
// hour's lease to expire, after which the next run redoes it. Each hour is
// merged into the view's _state.json on its own (conditional write, retried
// on a refusal, the hour's entry carrying its lease's token so a runner
// that lost the hour cannot overwrite it; batch/recompute, shared.go).
// Every hour worked on is recorded (ItemHistory: view, hour, runner, token,
// start, end, outcome), so "no hour recomputed by two runners at once" can
// be checked. Backfill and repair-boundary hold the recompute lock
// exclusively: while one does, hour leases are refused, and it starts only
// once the hours in flight are done (the held set).
//
// After its hours each runner, under the view's "boundary" item lease,
// computes B from the state as merged so far and publishes it to the
// Redis mirror (internal/boundary.Publish, forward only), so B moves once
// every hour below it is final, by whichever runner finishes last.
// The on-demand repair-boundary job (`lambdalake batch repair-boundary`),
// under the recompute lock, repairs a B that far-future events moved past
// the wall clock before admission existed: recompute.RepairBoundary sets it
// from the lake state, and boundary.Override — the operator override of the
// forward-only mirror, called from here only — sets the mirror to it.
//
// A job's lake is fenced twice: every write first checks the lease (the
// run's job lease, carried by the context; a shared run checks its hour
// leases itself), and the
// objects a job owns (_state.json, the seal) are written conditionally on
// the version the run read, which refuses the write a lease check cannot
// stop — one that passed the check and lands after another runner took
// over and wrote. A refused write ends the run as lost_lease.
//
// Redis keys (all under the hash tag {jobs}, or {<namespace>} when one is
// configured, so the lock scripts stay in one Cluster slot):
//
//	ll:{jobs}:lock:<job>   "<runner>:<token>" while a run holds the lease (PX = lease)
//	ll:{jobs}:fence:<job>  the last fencing token handed out (INCR)
//	ll:{jobs}:slot:<job>   the last scheduled slot (Unix ms) that was started
//	ll:{jobs}:history      run records, newest first, JSON, capped
//	ll:{jobs}:lock:recompute/<view>/<hour|boundary>
//	                       "<runner>:<token>" while a runner holds an item of a shared run
//	ll:{jobs}:fence:recompute/items  the last item fencing token (INCR)
//	ll:{jobs}:held:recompute         sorted set: held item locks by expiry (ms, Redis clock)
//	ll:{jobs}:items        item records (one per hour worked on), newest first, capped
//
// A scheduled run is identified by its slot, the time the cron schedule
// names; every runner computes the same slots, and the acquire script
// refuses a slot at or before the last one started, so one slot runs once
// however many runners race for it — except a shared job's, which every
// runner runs, its items split by their leases. Jobs are idempotent and resumable: a
// runner killed mid-run leaves its lock to expire, and the next slot's
// runner finishes the work.
package jobs
