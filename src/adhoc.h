/*
 * Ad-hoc commands (XEP-0050) on a component's JID: a table of commands,
 * each a function called once per step with the form the user submitted
 * (NULL on the first step), which answers with the next form or with a
 * completion note.  Multi-step commands keep their state under a
 * sessionid (XEP-0050) that expires after ADHOC_TIMEOUT seconds.
 *
 * Commands for every registered user: "settings" (the backend's
 * registration fields that are not secret, changed without a new
 * credential check) and "unregister".  Commands for admins (the
 * component's admins list): "list-users", "user-details",
 * "disconnect-user", "announce", "stats".
 */
#ifndef CAUSEWAY_ADHOC_H
#define CAUSEWAY_ADHOC_H

struct component;
struct stanza;

#define NS_COMMANDS "http://jabber.org/protocol/commands"
#define ADHOC_TIMEOUT 600

/* iq set with <command xmlns=NS_COMMANDS node=.../>: the answer. */
struct stanza *adhoc_handle(struct component *c, const struct stanza *iq,
    const struct stanza *command);
/* disco#items on node NS_COMMANDS: the commands the asker may run. */
struct stanza *adhoc_disco_items(struct component *c,
    const struct stanza *iq);
/* disco#info on a command's node, or NULL when node names no command. */
struct stanza *adhoc_disco_info(struct component *c,
    const struct stanza *iq, const char *node);
/* Drops every pending multi-step command of the component. */
void adhoc_free_all(struct component *c);

#endif
