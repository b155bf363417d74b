/*
 * The worker pool: a few pthreads for library calls that block (SMTP,
 * IMAP command sequences, getaddrinfo outside evdns).
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

/* Starts nthreads threads (1..64).  Needs evthread_use_pthreads() to
 * have been called before the event base was created. */
struct worker_pool *worker_pool_new(struct event_base *base,
    unsigned nthreads);
/*
 * Stops the pool: jobs already queued still run, the threads are joined,
 * and every pending done() runs on the calling (loop) thread before this
 * returns.  Call it before freeing the event base.
 */
void worker_pool_free(struct worker_pool *pool);
/* Queue a job; done may be NULL.  Never blocks the caller. */
void worker_submit(struct worker_pool *pool, worker_fn work, worker_fn done,
    void *arg);
/* Jobs queued or running, for statistics. */
unsigned worker_pending(const struct worker_pool *pool);

#endif
