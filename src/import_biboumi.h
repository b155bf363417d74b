/*
 * causeway -c FILE --import-biboumi BIBOUMI.sqlite [--component DOMAIN]:
 * a biboumi 9 database into causeway's store (docs/import-biboumi.md says
 * what maps to what).
 */
#ifndef CAUSEWAY_IMPORT_BIBOUMI_H
#define CAUSEWAY_IMPORT_BIBOUMI_H

struct config;

/*
 * Imports file into the IRC component named domain (NULL: the only IRC
 * component of cfg) of the store at database, sealing secrets with the
 * key in key_file.  Everything is written in one transaction, or
 * nothing.  Prints one summary line on stdout; reasons for refusing and
 * what is not carried over go to the log (stderr).  Returns the exit
 * status: 0 imported, 1 refused (nothing changed).
 */
int import_biboumi(const struct config *cfg, const char *database,
    const char *key_file, const char *file, const char *domain);

#endif
