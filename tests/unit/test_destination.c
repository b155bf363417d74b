/*
 * The destination policy's check (src/destination.c): the default
 * refusals, the usual ports, and destinations_allow / _deny.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "causeway.h"
#include "destination.h"
#include "tap.h"

struct causeway *cw;

static int
allowed(const char *host, const char *addr, int port,
    enum destination_proto proto)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s = (void *)&ss;
		s->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &s->sin6_addr);
	} else {
		struct sockaddr_in *s = (void *)&ss;
		s->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &s->sin_addr);
	}
	return destination_allowed(host, (struct sockaddr *)&ss, port, proto);
}

static void
test_default_refuses_internal(void)
{
	destination_configure(NULL, NULL);
	static const char *const bad[] = { "127.0.0.1", "127.8.9.10",
	    "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
	    "100.64.0.1", "100.127.255.254", "169.254.169.254", "0.0.0.0",
	    "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
	    "fd00::1", "fc12::1", "ff02::1", "::ffff:127.0.0.1",
	    "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", NULL };
	for (size_t i = 0; bad[i] != NULL; i++) {
		if (allowed("h", bad[i], 993, DESTINATION_IMAP))
			printf("#   %s allowed\n", bad[i]);
		CHECK(!allowed("h", bad[i], 993, DESTINATION_IMAP));
	}
}

static void
test_default_allows_public_on_usual_ports(void)
{
	destination_configure(NULL, NULL);
	CHECK(allowed("h", "192.0.2.10", 993, DESTINATION_IMAP));
	CHECK(allowed("h", "192.0.2.10", 143, DESTINATION_IMAP));
	CHECK(allowed("h", "2001:db8::1", 465, DESTINATION_SMTP));
	CHECK(allowed("h", "198.51.100.7", 587, DESTINATION_SMTP));
	CHECK(allowed("h", "198.51.100.7", 25, DESTINATION_SMTP));
	CHECK(allowed("h", "198.51.100.7", 6667, DESTINATION_IRC));
	CHECK(allowed("h", "198.51.100.7", 6697, DESTINATION_IRC));
	CHECK(allowed("h", "198.51.100.7", 7070, DESTINATION_IRC));
	CHECK(allowed("h", "100.128.0.1", 993, DESTINATION_IMAP));
	/* Other ports: refused. */
	CHECK(!allowed("h", "192.0.2.10", 22, DESTINATION_IMAP));
	CHECK(!allowed("h", "192.0.2.10", 587, DESTINATION_IMAP));
	CHECK(!allowed("h", "192.0.2.10", 993, DESTINATION_SMTP));
	CHECK(!allowed("h", "192.0.2.10", 6670, DESTINATION_IRC));
	CHECK(!allowed("h", "192.0.2.10", 6379, DESTINATION_IRC));
}

static void
test_allow_and_deny(void)
{
	CHECK(destination_configure("127.0.0.0/8, 10.1.0.0/16:2525, "
	    "mail.example.org, [fd00::/8]:993", "192.0.2.0/24, "
	    "bad.example.org:587, 127.0.0.9") == 0);
	CHECK(allowed("h", "127.0.0.1", 40000, DESTINATION_IMAP));
	CHECK(!allowed("h", "127.0.0.9", 993, DESTINATION_IMAP));
	CHECK(allowed("h", "10.1.2.3", 2525, DESTINATION_SMTP));
	CHECK(!allowed("h", "10.1.2.3", 587, DESTINATION_SMTP));
	CHECK(allowed("mail.example.org", "10.9.9.9", 1234, DESTINATION_SMTP));
	CHECK(allowed("MAIL.example.org", "10.9.9.9", 1234, DESTINATION_SMTP));
	CHECK(allowed("h", "fd00::5", 993, DESTINATION_IMAP));
	CHECK(!allowed("h", "fd00::5", 143, DESTINATION_IMAP));
	CHECK(!allowed("h", "192.0.2.10", 993, DESTINATION_IMAP));
	CHECK(!allowed("bad.example.org", "198.51.100.7", 587,
	    DESTINATION_SMTP));
	CHECK(allowed("bad.example.org", "198.51.100.7", 465,
	    DESTINATION_SMTP));
	/* An IPv4 rule covers the IPv4-mapped form too. */
	CHECK(allowed("h", "::ffff:127.0.0.1", 40000, DESTINATION_IMAP));
}

static void
test_bad_entries(void)
{
	CHECK(destination_configure("10.0.0.0/33", NULL) != 0);
	CHECK(destination_configure("host:0", NULL) != 0);
	CHECK(destination_configure("host:99999", NULL) != 0);
	CHECK(destination_configure("[::1", NULL) != 0);
	CHECK(destination_configure(NULL, "a b") != 0);
	CHECK(destination_configure(NULL, "1.2.3.4/") != 0);
	CHECK(destination_configure("", "") == 0);
}

static void
test_resolve_refuses_with_one_text(void)
{
	struct destination d;
	char err[256];
	destination_configure(NULL, NULL);
	CHECK(destination_resolve("127.0.0.1", 993, DESTINATION_IMAP, &d, err,
	    sizeof(err)) == -1);
	CHECK_STR(err, DESTINATION_REFUSED);
	CHECK(destination_resolve("no-such-host.invalid", 993,
	    DESTINATION_IMAP, &d, err, sizeof(err)) == -1);
	CHECK_STR(err, DESTINATION_REFUSED);
	destination_configure("127.0.0.0/8", NULL);
	CHECK(destination_resolve("127.0.0.1", 1143, DESTINATION_IMAP, &d,
	    err, sizeof(err)) == 0);
	CHECK_STR(d.text, "127.0.0.1");
	CHECK(ntohs(((struct sockaddr_in *)&d.addr)->sin_port) == 1143);
}

/* "localhost" and names under it are 127.0.0.1 whatever DNS says
 * (RFC 6761), and judged as loopback. */
static void
test_localhost_names(void)
{
	struct destination d;
	char err[256];
	destination_configure(NULL, NULL);
	CHECK(destination_resolve("irc.localhost", 6697, DESTINATION_IRC, &d,
	    err, sizeof(err)) == -1);
	CHECK_STR(err, DESTINATION_REFUSED);
	CHECK(destination_resolve("LOCALHOST", 6697, DESTINATION_IRC, &d,
	    err, sizeof(err)) == -1);
	destination_configure("127.0.0.0/8", NULL);
	CHECK(destination_resolve("irc.localhost", 6697, DESTINATION_IRC, &d,
	    err, sizeof(err)) == 0);
	CHECK_STR(d.text, "127.0.0.1");
	/* Not a name under localhost. */
	CHECK(destination_resolve("notlocalhost.invalid", 6697,
	    DESTINATION_IRC, &d, err, sizeof(err)) == -1);
	destination_configure(NULL, NULL);
}

int
main(void)
{
	RUN(test_default_refuses_internal);
	RUN(test_default_allows_public_on_usual_ports);
	RUN(test_allow_and_deny);
	RUN(test_bad_entries);
	RUN(test_resolve_refuses_with_one_text);
	RUN(test_localhost_names);
	return TAP_DONE();
}
