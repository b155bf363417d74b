/*
 * The worker pool: a few pthreads for library calls that block (SMTP,
 * IMAP command sequences, getaddrinfo outside evdns).
 *
 * Fairness: a job may carry a key (a user's JID); jobs with the same key
 * run one at a time, in the order submitted, so one user never holds
 * more than one worker.  And a slow server costs only its own user: when
 * a keyed job could run but every thread is busy (stuck in someone's slow
 * server until that operation's deadline), the pool starts another
 * thread, up to WORKER_MAX_THREADS; the started count is the floor.
 *
 * work(arg) runs on a worker thread and must not touch anything the loop
 * owns (sessions, components, the store): it reads and writes only its
 * own job data.  done(arg) then runs on the loop thread, in the order jobs
 * finish, through one event made active by the worker, so the loop never
 * waits for a worker.
 */
#ifndef CAUSEWAY_WORKER_H
#define CAUSEWAY_WORKER_H

struct event_base;
struct worker_pool;

typedef void (*worker_fn)(void *arg);

#define WORKER_MAX_THREADS 64

/*
 * Starts nthreads threads (1..64; outside that it warns and clamps); it
 * grows by itself while jobs wait for a busy pool (see above).
 * Needs evthread_use_pthreads() to have been called before the event base
 * was created.  Failing to start a thread is fatal, like running out of
 * memory.  The pool's event does not keep event_base_dispatch() running
 * by itself: something else (a socket, a timer) must, or use
 * EVLOOP_NO_EXIT_ON_EMPTY.  Workers block all signals, so signals reach
 * the loop thread.
 */
struct worker_pool *worker_pool_new(struct event_base *base,
    unsigned nthreads);
/*
 * Stops the pool: jobs already queued still run, the threads are joined,
 * and every pending done() runs on the calling (loop) thread before this
 * returns.  A job submitted by such a done() runs inline, on the calling
 * thread.  Blocks as long as the slowest running job.  Call it before
 * freeing the event base, and never from work() or done().  NULL is a
 * no-op.
 */
void worker_pool_free(struct worker_pool *pool);
/* Queue a job; done may be NULL.  Never waits for a worker. */
void worker_submit(struct worker_pool *pool, worker_fn work, worker_fn done,
    void *arg);
/* The same, for the owner key (copied; NULL: no key): it runs only when
 * no earlier job of that key is queued or running. */
void worker_submit_keyed(struct worker_pool *pool, const char *key,
    worker_fn work, worker_fn done, void *arg);
/* Threads started so far, for statistics and tests. */
unsigned worker_threads(struct worker_pool *pool);
/* Jobs queued or running work(), for statistics; any thread. */
unsigned worker_pending(const struct worker_pool *pool);
/* Seconds the threads spent running jobs since the pool started. */
double worker_busy_seconds(const struct worker_pool *pool);

#endif
