// Package jobs runs the batch side on a schedule (DESIGN §2, jobs):
// recompute, merge, retention and on-demand backfill, each a Job with a cron
// schedule. Several `lambdalake jobs` processes may run against one Redis;
// a Lease (a Redis lock with a lease, renewal and a fencing token) makes
// each scheduled run happen once, and a runner that loses its lease has its
// job's context cancelled so it stops writing. Every run is recorded in a
// capped Redis list, read by `lambdalake jobs status` and GET /v1/jobs.
//
// After each recompute run the job publishes the view's new boundary B to
// its Redis mirror (internal/boundary.Publish, forward only), first checking
// it still holds the lease, so the speed layer and serving replicas see it.
// The on-demand repair-boundary job (`lambdalake batch repair-boundary`),
// under the recompute lock, repairs a B that far-future events moved past
// the wall clock before admission existed: recompute.RepairBoundary sets it
// from the lake state, and boundary.Override — the operator override of the
// forward-only mirror, called from here only — sets the mirror to it.
//
// A job's lake is fenced twice: every write first checks the lease, and the
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
//
// A scheduled run is identified by its slot, the time the cron schedule
// names; every runner computes the same slots, and the acquire script
// refuses a slot at or before the last one started, so one slot runs once
// however many runners race for it. Jobs are idempotent and resumable: a
// runner killed mid-run leaves its lock to expire, and the next slot's
// runner finishes the work.
package jobs
