/*
 * Unit tests of the worker pool.  None depends on timing: where a test
 * needs "a worker is still blocked", the worker blocks on a pipe that the
 * test (or the loop) writes to.  alarm() turns a hang into a failure.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "log.h"
#include "tap.h"
#include "worker.h"

static pthread_t loop_thread;

/* Blocks until a byte arrives on fd. */
static void
wait_byte(int fd)
{
	char c;
	while (read(fd, &c, 1) == -1)
		;
}

static void
send_byte(int fd)
{
	while (write(fd, "x", 1) == -1)
		;
}

struct ident {
	struct event_base *base;
	pthread_t work_thread;
	pthread_t done_thread;
	int worked, done;
};

static void
ident_work(void *arg)
{
	struct ident *id = arg;
	id->work_thread = pthread_self();
	id->worked = 1;
}

static void
ident_done(void *arg)
{
	struct ident *id = arg;
	id->done_thread = pthread_self();
	id->done = 1;
	event_base_loopexit(id->base, NULL);
}

static void
test_results_on_loop_thread(void)
{
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 2);
	struct ident id = { .base = base };

	worker_submit(pool, ident_work, ident_done, &id);
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);

	CHECK(id.worked == 1);
	CHECK(id.done == 1);
	CHECK(!pthread_equal(id.work_thread, loop_thread));
	CHECK(pthread_equal(id.done_thread, loop_thread));
	CHECK(worker_pending(pool) == 0);
	worker_pool_free(pool);
	event_base_free(base);
}

#define MANY 1000

struct many {
	struct event_base *base;
	int worked[MANY];	/* each slot written by one worker only */
	int done[MANY];
	int done_total;
	int done_off_loop;
	int done_before_work;
};

struct many_job {
	struct many *m;
	int i;
};

static void
many_work(void *arg)
{
	struct many_job *j = arg;
	j->m->worked[j->i]++;
}

static void
many_done(void *arg)
{
	struct many_job *j = arg;
	struct many *m = j->m;
	if (!pthread_equal(pthread_self(), loop_thread))
		m->done_off_loop++;
	if (m->worked[j->i] != 1)
		m->done_before_work++;
	m->done[j->i]++;
	if (++m->done_total == MANY)
		event_base_loopexit(m->base, NULL);
	free(j);
}

static void
test_many_jobs(void)
{
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 4);
	struct many *m = calloc(1, sizeof(*m));
	m->base = base;

	for (int i = 0; i < MANY; i++) {
		struct many_job *j = malloc(sizeof(*j));
		j->m = m;
		j->i = i;
		worker_submit(pool, many_work, many_done, j);
	}
	CHECK(worker_pending(pool) <= MANY);
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);

	int bad_work = 0, bad_done = 0;
	for (int i = 0; i < MANY; i++) {
		bad_work += m->worked[i] != 1;
		bad_done += m->done[i] != 1;
	}
	CHECK(bad_work == 0);
	CHECK(bad_done == 0);
	CHECK(m->done_total == MANY);
	CHECK(m->done_off_loop == 0);
	CHECK(m->done_before_work == 0);
	CHECK(worker_pending(pool) == 0);
	worker_pool_free(pool);
	event_base_free(base);
	free(m);
}

#define QUEUED 100

struct queued {
	int gate[2];
	int order[QUEUED];	/* the job index, in the order done() ran */
	int worked;		/* one thread: no lock needed */
	int done;
	int done_off_loop;
	int chained_worked, chained_done;
};

struct queued_job {
	struct queued *q;
	int i;
};

static void
queued_work(void *arg)
{
	struct queued_job *j = arg;
	if (j->i == 0)
		wait_byte(j->q->gate[0]);
	j->q->worked++;
}

static void
chained_work(void *arg)
{
	struct queued *q = arg;
	q->chained_worked++;
}

static void
chained_done(void *arg)
{
	struct queued *q = arg;
	if (!pthread_equal(pthread_self(), loop_thread))
		q->done_off_loop++;
	q->chained_done++;
}

static struct worker_pool *queued_pool;

static void
queued_done(void *arg)
{
	struct queued_job *j = arg;
	struct queued *q = j->q;
	if (!pthread_equal(pthread_self(), loop_thread))
		q->done_off_loop++;
	if (q->done < QUEUED)
		q->order[q->done] = j->i;
	q->done++;
	/* A done() that follows up with another job, during the free. */
	if (j->i == QUEUED - 1)
		worker_submit(queued_pool, chained_work, chained_done, q);
	free(j);
}

static void
test_free_runs_queued(void)
{
	struct event_base *base = event_base_new();
	/* One thread: while job 0 waits at the gate, the rest must queue. */
	struct worker_pool *pool = worker_pool_new(base, 1);
	struct queued q = { .worked = 0 };
	CHECK(pipe(q.gate) == 0);
	queued_pool = pool;

	for (int i = 0; i < QUEUED; i++) {
		struct queued_job *j = malloc(sizeof(*j));
		j->q = &q;
		j->i = i;
		worker_submit(pool, queued_work, queued_done, j);
	}
	CHECK(worker_pending(pool) == QUEUED);
	CHECK(q.done == 0);

	/* The loop never runs: every done() must come from the free. */
	send_byte(q.gate[1]);
	worker_pool_free(pool);

	CHECK(q.worked == QUEUED);
	CHECK(q.done == QUEUED);
	CHECK(q.done_off_loop == 0);
	int in_order = 1;
	for (int i = 0; i < QUEUED; i++)
		in_order &= q.order[i] == i;
	CHECK(in_order);
	CHECK(q.chained_worked == 1);
	CHECK(q.chained_done == 1);
	close(q.gate[0]);
	close(q.gate[1]);
	event_base_free(base);
}

struct nulldone {
	pthread_mutex_t lock;
	int worked;
};

static void
nulldone_work(void *arg)
{
	struct nulldone *n = arg;
	pthread_mutex_lock(&n->lock);
	n->worked++;
	pthread_mutex_unlock(&n->lock);
}

static void
test_null_done(void)
{
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 3);
	struct nulldone n = { .lock = PTHREAD_MUTEX_INITIALIZER };

	for (int i = 0; i < 50; i++)
		worker_submit(pool, nulldone_work, NULL, &n);
	worker_pool_free(pool);
	CHECK(n.worked == 50);
	event_base_free(base);
}

#define TICKS_TO_RELEASE 5

struct ticking {
	struct event_base *base;
	struct event *timer;
	int gate[2];
	int ticks;
	int ticks_at_done;
	int released;
	int done;
};

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ticking *t = arg;
	/* Only a running loop gets here, and only it opens the gate. */
	if (++t->ticks == TICKS_TO_RELEASE) {
		send_byte(t->gate[1]);
		t->released = 1;
	}
}

static void
blocking_work(void *arg)
{
	struct ticking *t = arg;
	wait_byte(t->gate[0]);
}

static void
blocking_done(void *arg)
{
	struct ticking *t = arg;
	t->ticks_at_done = t->ticks;
	t->done = 1;
	event_base_loopexit(t->base, NULL);
}

static void
test_loop_ticks_while_worker_blocks(void)
{
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 1);
	struct ticking t = { .base = base };
	CHECK(pipe(t.gate) == 0);

	t.timer = event_new(base, -1, EV_PERSIST, tick_cb, &t);
	struct timeval tv = { .tv_sec = 0, .tv_usec = 5000 };
	event_add(t.timer, &tv);
	worker_submit(pool, blocking_work, blocking_done, &t);
	/*
	 * If the loop waited for the worker, no tick would ever open the
	 * gate and this would hang until the alarm.
	 */
	event_base_loop(base, 0);

	CHECK(t.done == 1);
	CHECK(t.released == 1);
	CHECK(t.ticks_at_done >= TICKS_TO_RELEASE);
	event_free(t.timer);
	worker_pool_free(pool);
	close(t.gate[0]);
	close(t.gate[1]);
	event_base_free(base);
}

/*
 * Users stuck in slow jobs do not stall everyone else: with both
 * threads of a pool of 2 blocked in two users' jobs, a third user's job
 * still runs (the pool grows) before anything unblocks them.  A 5 s timer on the loop is the
 * failure path: it opens the gates so the test ends either way.
 */
struct stall {
	struct event_base *base;
	int gate[2];
	int quick_done, blocked_done, timed_out;
	struct event *timer;
};

static void
stall_block(void *arg)
{
	struct stall *st = arg;
	wait_byte(st->gate[0]);
}

static void
stall_blocked_done(void *arg)
{
	struct stall *st = arg;
	if (++st->blocked_done == 2)
		event_base_loopexit(st->base, NULL);
}

static void
stall_quick(void *arg)
{
	(void)arg;
}

static void
stall_quick_done(void *arg)
{
	struct stall *st = arg;
	st->quick_done = 1;
	send_byte(st->gate[1]);
	send_byte(st->gate[1]);
}

static void
stall_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct stall *st = arg;
	(void)fd;
	(void)what;
	st->timed_out = 1;
	send_byte(st->gate[1]);
	send_byte(st->gate[1]);
}

static void
test_blocked_workers_do_not_stall_others(void)
{
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 2);
	struct stall st = { .base = base };
	CHECK(pipe(st.gate) == 0);
	st.timer = evtimer_new(base, stall_timeout, &st);
	struct timeval tv = { 5, 0 };
	evtimer_add(st.timer, &tv);
	worker_submit_keyed(pool, "a@example.org", stall_block,
	    stall_blocked_done, &st);
	worker_submit_keyed(pool, "b@example.org", stall_block,
	    stall_blocked_done, &st);
	worker_submit_keyed(pool, "c@example.org", stall_quick,
	    stall_quick_done, &st);
	event_base_loop(base, 0);
	CHECK(st.quick_done == 1);
	CHECK(st.timed_out == 0);
	CHECK(st.blocked_done == 2);
	event_free(st.timer);
	worker_pool_free(pool);
	close(st.gate[0]);
	close(st.gate[1]);
	event_base_free(base);
}

/*
 * One key, one worker: jobs with the same key never run at the same
 * time and run in the order submitted; another key runs meanwhile.
 */
#define KEYED_JOBS 6

struct keyed {
	struct event_base *base;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int running_u, max_u;
	int order[KEYED_JOBS], norder;
	int v_ran_while_u, v_done, ndone;
};

/* Waits on k->cond (lock held) until *flag or 5 s have passed: the two
 * keys meet by handshake, not by timing, so a loaded machine cannot make
 * the check flake; a pool that serialised both keys fails it after 10 s. */
static void
keyed_wait(struct keyed *k, const int *flag)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	while (!*flag && pthread_cond_timedwait(&k->cond, &k->lock,
	    &until) == 0)
		;
}

struct keyed_job {
	struct keyed *k;
	int i;
	int is_u;
};

static void
keyed_work(void *arg)
{
	struct keyed_job *j = arg;
	struct keyed *k = j->k;
	pthread_mutex_lock(&k->lock);
	if (j->is_u) {
		k->running_u++;
		if (k->running_u > k->max_u)
			k->max_u = k->running_u;
		k->order[k->norder++] = j->i;
		pthread_cond_broadcast(&k->cond);
		/* alice's first job holds her key until bob's job ran. */
		if (j->i == 0)
			keyed_wait(k, &k->v_done);
	} else {
		/* bob's job runs while one of alice's holds a worker. */
		keyed_wait(k, &k->running_u);
		k->v_ran_while_u = k->running_u > 0;
		k->v_done = 1;
		pthread_cond_broadcast(&k->cond);
	}
	pthread_mutex_unlock(&k->lock);
	if (j->is_u)
		usleep(20000);
	pthread_mutex_lock(&k->lock);
	if (j->is_u)
		k->running_u--;
	pthread_mutex_unlock(&k->lock);
}

static void
keyed_done(void *arg)
{
	struct keyed_job *j = arg;
	if (++j->k->ndone == KEYED_JOBS + 1)
		event_base_loopexit(j->k->base, NULL);
}

static void
test_one_key_one_worker(void)
{
	struct event_base *base = event_base_new();
	struct worker_pool *pool = worker_pool_new(base, 4);
	struct keyed k = { .base = base };
	pthread_mutex_init(&k.lock, NULL);
	pthread_cond_init(&k.cond, NULL);
	struct keyed_job jobs[KEYED_JOBS + 1];
	for (int i = 0; i < KEYED_JOBS; i++) {
		jobs[i] = (struct keyed_job){ .k = &k, .i = i, .is_u = 1 };
		worker_submit_keyed(pool, "alice@example.org", keyed_work,
		    keyed_done, &jobs[i]);
	}
	jobs[KEYED_JOBS] = (struct keyed_job){ .k = &k, .i = 99 };
	worker_submit_keyed(pool, "bob@example.org", keyed_work, keyed_done,
	    &jobs[KEYED_JOBS]);
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	CHECK(k.ndone == KEYED_JOBS + 1);
	CHECK(k.max_u == 1);
	CHECK(k.norder == KEYED_JOBS);
	for (int i = 0; i < k.norder; i++)
		CHECK(k.order[i] == i);
	/* bob's job did not wait for alice's six. */
	CHECK(k.v_ran_while_u == 1);
	worker_pool_free(pool);
	pthread_cond_destroy(&k.cond);
	pthread_mutex_destroy(&k.lock);
	event_base_free(base);
}

int
main(void)
{
	/* A hang is a failure, not a stuck CI job. */
	alarm(20);
	log_init(LOG_LEVEL_WARN, 0);
	if (evthread_use_pthreads() == -1) {
		printf("Bail out! evthread_use_pthreads failed\n");
		return 1;
	}
	loop_thread = pthread_self();

	RUN(test_results_on_loop_thread);
	RUN(test_many_jobs);
	RUN(test_free_runs_queued);
	RUN(test_null_done);
	RUN(test_loop_ticks_while_worker_blocks);
	RUN(test_blocked_workers_do_not_stall_others);
	RUN(test_one_key_one_worker);
	return TAP_DONE();
}
