/* The smstools3 driver: not built yet; a component with driver =
 * smstools fails to start with a clear error. */
#include "autoconf.h"

#include <stddef.h>

#include "log.h"
#include "sms_driver.h"

static struct sms_driver *
start(struct component *c)
{
	(void)c;
	log_error("sms: the smstools driver is not available in this build");
	return NULL;
}

const struct sms_driver_ops sms_smstools_driver = {
	.name = "smstools",
	.start = start,
};
