/*
 * The IRC backend's entry in the registry.  This core needs the
 * backend's identity (its disco gateway type and its name in
 * configuration); the network protocol itself is the IRC backend issue's
 * work, and until then every operation is NULL, which the core answers
 * with feature-not-implemented.
 */
#include "autoconf.h"

#include "backend.h"

const struct backend irc_backend = {
	.abi = BACKEND_ABI,
	.name = "irc",
	.gateway_type = "irc",
	.description = "IRC",
};
