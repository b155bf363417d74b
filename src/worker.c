/*
 * The worker pool.
 *
 * A job travels:
 *
 *   worker_submit --> queue --(a worker)--> work(arg) --> done queue
 *        --(event_active on the loop's done event)--> done(arg), freed
 *
 * One mutex guards both queues, the stop flag and the count; the loop
 * thread holds it only to append a job or to take the whole done queue,
 * never while work() or done() runs, so the loop never waits on a job.
 * Both queues are singly linked with a tail pointer: O(1) appends, FIFO.
 *
 * Stopping: worker_pool_free sets the flag and wakes everyone; a worker
 * leaves only when the flag is set AND the queue is empty, so queued jobs
 * still run.  After the join the caller drains the done queue itself.
 *
 * Keys: a worker takes the first queued job whose key is not running
 * (the running keys are a small array, one slot per thread), so jobs of
 * one key keep their order and never overlap; a job finishing with a key
 * wakes the others, since a job of that key may now run.  Growth: a
 * submit that finds no idle thread while its job could run starts one
 * more thread (never more than WORKER_MAX_THREADS); threads are not
 * stopped before the pool is freed.  Only keyed jobs grow the pool: a
 * key says "this waits on someone's server"; unkeyed jobs keep the fixed
 * pool and its order.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "worker.h"
#include "xmalloc.h"

struct job {
	struct job *next;
	char *key;		/* owned; NULL: no key */
	worker_fn work;
	worker_fn done;
	void *arg;
};

struct job_queue {
	struct job *head;
	struct job *tail;
};

struct worker_pool {
	struct event *done_ev;	/* made active by workers, runs on the loop */
	pthread_mutex_t lock;
	pthread_cond_t wake;	/* a job was queued, or we are stopping */
	struct job_queue queue;	/* waiting for a worker */
	struct job_queue done;	/* work() finished, done() not yet run */
	int stopping;
	int joined;		/* threads gone: submit runs jobs inline */
	/* Atomic so worker_pending() can read it from a const pointer
	 * without the lock; changed only under the lock. */
	atomic_uint pending;
	/* Nanoseconds spent in work(), all threads (for metrics). */
	atomic_ullong busy_ns;
	unsigned nthreads;
	unsigned idle;		/* threads waiting for a job */
	pthread_t *threads;	/* WORKER_MAX_THREADS slots */
	/* The keys of running jobs (borrowed from the jobs), one slot per
	 * thread; NULL slots are free. */
	const char *running[WORKER_MAX_THREADS];
};

static int
key_running(const struct worker_pool *pool, const char *key)
{
	for (unsigned i = 0; i < WORKER_MAX_THREADS; i++)
		if (pool->running[i] != NULL && strcmp(pool->running[i],
		    key) == 0)
			return 1;
	return 0;
}

static void
key_set(struct worker_pool *pool, const char *key, const char *value)
{
	for (unsigned i = 0; i < WORKER_MAX_THREADS; i++)
		if (pool->running[i] == key) {
			pool->running[i] = value;
			return;
		}
}

static int
runnable(const struct worker_pool *pool, const struct job *j)
{
	return j->key == NULL || !key_running(pool, j->key);
}

/* Takes the first job that may run now (see above), or NULL. */
static struct job *
queue_take_runnable(struct worker_pool *pool)
{
	struct job *prev = NULL;
	for (struct job *j = pool->queue.head; j != NULL; prev = j,
	    j = j->next) {
		if (!runnable(pool, j))
			continue;
		if (prev != NULL)
			prev->next = j->next;
		else
			pool->queue.head = j->next;
		if (pool->queue.tail == j)
			pool->queue.tail = prev;
		j->next = NULL;
		return j;
	}
	return NULL;
}

static void
queue_push(struct job_queue *q, struct job *j)
{
	j->next = NULL;
	if (q->tail != NULL)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
}

/* Takes the whole queue, leaving it empty; returns its old head. */
static struct job *
queue_take(struct job_queue *q)
{
	struct job *j = q->head;
	q->head = q->tail = NULL;
	return j;
}

static void
run_done_list(struct job *j)
{
	while (j != NULL) {
		/* done() may free what arg points to, never the job itself. */
		struct job *next = j->next;
		if (j->done != NULL)
			j->done(j->arg);
		free(j->key);
		free(j);
		j = next;
	}
}

/*
 * On the loop thread.  Takes the done queue in one go and runs it with
 * the lock released, so done() may submit new jobs; jobs finishing
 * meanwhile re-activate the event and run on the next round, which keeps
 * a flood of results from starving the rest of the loop.
 */
static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_pool *pool = arg;

	pthread_mutex_lock(&pool->lock);
	struct job *list = queue_take(&pool->done);
	pthread_mutex_unlock(&pool->lock);
	run_done_list(list);
}

static int start_thread(struct worker_pool *pool);

/* 1 when a keyed job in the queue could run now. */
static int
keyed_runnable(const struct worker_pool *pool)
{
	for (const struct job *j = pool->queue.head; j != NULL; j = j->next)
		if (j->key != NULL && runnable(pool, j))
			return 1;
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker_pool *pool = arg;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		struct job *j;
		while ((j = queue_take_runnable(pool)) == NULL &&
		    !(pool->stopping && pool->queue.head == NULL)) {
			pool->idle++;
			pthread_cond_wait(&pool->wake, &pool->lock);
			pool->idle--;
		}
		if (j == NULL)
			break;		/* stopping, and nothing left to do */
		if (j->key != NULL)
			key_set(pool, NULL, j->key);
		/*
		 * A keyed job submitted while this thread still counted as
		 * idle did not grow the pool; now every thread may be busy,
		 * and another user's job must not wait behind slow ones.
		 */
		if (j->key != NULL && pool->idle == 0 && !pool->stopping &&
		    pool->nthreads < WORKER_MAX_THREADS &&
		    keyed_runnable(pool)) {
			int err = start_thread(pool);
			if (err != 0)
				log_warn("worker pool: cannot start thread %u: "
				    "%s", pool->nthreads + 1, strerror(err));
		}
		pthread_mutex_unlock(&pool->lock);

		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		j->work(j->arg);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		atomic_fetch_add(&pool->busy_ns, (unsigned long long)
		    ((t1.tv_sec - t0.tv_sec) * 1000000000LL +
		    (t1.tv_nsec - t0.tv_nsec)));

		pthread_mutex_lock(&pool->lock);
		atomic_fetch_sub(&pool->pending, 1);
		if (j->key != NULL) {
			key_set(pool, j->key, NULL);
			/* A job of this key may be waiting for it. */
			if (pool->queue.head != NULL)
				pthread_cond_broadcast(&pool->wake);
		}
		if (j->done == NULL) {
			/* Nothing for the loop to do: do not wake it. */
			free(j->key);
			free(j);
			continue;
		}
		/*
		 * Only the push onto an empty done queue needs to wake the
		 * loop: a non-empty queue has an activation on its way, and
		 * done_cb takes everything queued when it runs.
		 */
		int was_empty = pool->done.head == NULL;
		queue_push(&pool->done, j);
		if (was_empty) {
			/*
			 * Outside our lock: event_active takes the base's.
			 * The event outlives us (worker_pool_free joins
			 * before freeing it); if done_cb takes the queue
			 * before this lands, it merely runs once idle.
			 */
			pthread_mutex_unlock(&pool->lock);
			event_active(pool->done_ev, EV_READ, 0);
			pthread_mutex_lock(&pool->lock);
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* One more thread; the caller holds the lock or is the only thread.
 * Workers block every signal (they inherit the mask at creation), so
 * SIGTERM, SIGHUP and friends reach the loop thread, which handles them
 * through libevent, and a worker in a blocking call is never interrupted
 * by one. */
static int
start_thread(struct worker_pool *pool)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&pool->threads[pool->nthreads], NULL,
	    worker_main, pool);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err == 0)
		pool->nthreads++;
	return err;
}

struct worker_pool *
worker_pool_new(struct event_base *base, unsigned nthreads)
{
	if (nthreads < 1 || nthreads > WORKER_MAX_THREADS) {
		unsigned n = nthreads < 1 ? 1 : WORKER_MAX_THREADS;
		log_warn("worker pool: %u threads is out of range 1..%d, "
		    "using %u", nthreads, WORKER_MAX_THREADS, n);
		nthreads = n;
	}

	struct worker_pool *pool = xcalloc(1, sizeof(*pool));
	pool->done_ev = event_new(base, -1, 0, done_cb, pool);
	if (pool->done_ev == NULL)
		log_fatal("worker pool: cannot create the done event");
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
	atomic_init(&pool->pending, 0);
	pool->threads = xcalloc(WORKER_MAX_THREADS, sizeof(*pool->threads));

	pthread_mutex_lock(&pool->lock);
	for (unsigned i = 0; i < nthreads; i++) {
		int err = start_thread(pool);
		if (err != 0)
			/* Like an allocation failure: out of resources at
			 * start-up, nothing sensible to carry on with. */
			log_fatal("worker pool: cannot start thread %u of %u: "
			    "%s", i + 1, nthreads, strerror(err));
	}
	pthread_mutex_unlock(&pool->lock);
	log_debug("worker pool: %u threads started", nthreads);
	return pool;
}

void
worker_pool_free(struct worker_pool *pool)
{
	if (pool == NULL)
		return;

	pthread_mutex_lock(&pool->lock);
	pool->stopping = 1;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);

	for (unsigned i = 0; i < pool->nthreads; i++) {
		int err = pthread_join(pool->threads[i], NULL);
		if (err != 0)
			log_error("worker pool: joining thread %u: %s", i + 1,
			    strerror(err));
	}
	pool->joined = 1;

	/*
	 * No thread left, so no lock needed.  Loop until empty: a done()
	 * run here may submit a job, which worker_submit now runs inline
	 * and whose done() lands back on this queue.
	 */
	struct job *list;
	while ((list = queue_take(&pool->done)) != NULL)
		run_done_list(list);

	/* Also drops an activation that the loop never got to run. */
	event_free(pool->done_ev);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool->threads);
	free(pool);
}

void
worker_submit(struct worker_pool *pool, worker_fn work, worker_fn done,
    void *arg)
{
	worker_submit_keyed(pool, NULL, work, done, arg);
}

void
worker_submit_keyed(struct worker_pool *pool, const char *key,
    worker_fn work, worker_fn done, void *arg)
{
	struct job *j = xmalloc(sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	j->key = key != NULL ? xstrdup(key) : NULL;

	if (pool->joined) {
		/*
		 * Only reachable from a done() run by worker_pool_free on the
		 * caller's thread, which is blocking anyway: run the job here
		 * rather than drop it, and queue its done() behind the rest.
		 */
		work(arg);
		queue_push(&pool->done, j);
		return;
	}

	pthread_mutex_lock(&pool->lock);
	int can_run = runnable(pool, j);
	queue_push(&pool->queue, j);
	atomic_fetch_add(&pool->pending, 1);
	if (key != NULL && can_run && pool->idle == 0 && pool->nthreads <
	    WORKER_MAX_THREADS) {
		/* Everyone is busy, maybe stuck in a slow server until its
		 * deadline: this job does not wait for them. */
		int err = start_thread(pool);
		if (err != 0)
			log_warn("worker pool: cannot start thread %u: %s",
			    pool->nthreads + 1, strerror(err));
		else
			log_debug("worker pool: all busy, %u threads now",
			    pool->nthreads);
	}
	/* Broadcast: with keys, the one woken might not be able to take
	 * this job while another could. */
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
}

unsigned
worker_threads(struct worker_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	unsigned n = pool->nthreads;
	pthread_mutex_unlock(&pool->lock);
	return n;
}

unsigned
worker_pending(const struct worker_pool *pool)
{
	return atomic_load(&pool->pending);
}

double
worker_busy_seconds(const struct worker_pool *pool)
{
	return (double)atomic_load(&pool->busy_ns) / 1e9;
}
