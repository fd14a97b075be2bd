/* A small emitter of ACPI Machine Language byte code, enough for a DSDT:
 * scopes, devices, methods, named objects, integers, strings, packages and
 * _CRS resource templates.
 *
 * Nested objects are opened with a *_begin() call and closed with
 * nb_aml_end(); the PkgLength of each is worked out when it closes, since its
 * own size depends on the size of what it holds. Names are written as in ASL
 * ("\\_SB.PCI0", "^COM1", "_S5"); a segment shorter than four characters is
 * padded with '_' as ASL does. A malformed name, unbalanced nesting or an
 * object too large for AML is remembered and makes nb_aml_finish() fail
 * with a message naming the first such problem. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct NbAml NbAml;

NbAml *nb_aml_new(void);
void nb_aml_free(NbAml *aml);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NbAml, nb_aml_free)

/* The byte code; NULL with an error (G_IO_ERROR_INVALID_DATA) when
 * something was malformed or a scope is still open. */
GBytes *nb_aml_finish(NbAml *aml, GError **error);

/* Data objects: each counts as one element of an enclosing Package. */
void nb_aml_integer(NbAml *aml, uint64_t value);
void nb_aml_string(NbAml *aml, const char *text);
/* A compressed EISA ID ("PNP0A03") as an integer, what _HID and _CID take. */
void nb_aml_eisaid(NbAml *aml, const char *id);
void nb_aml_buffer(NbAml *aml, const void *data, size_t len);
void nb_aml_package_begin(NbAml *aml);

/* Name(NAME, <the next data object>). */
void nb_aml_name(NbAml *aml, const char *name);
/* Return (<the next data object>). */
void nb_aml_return(NbAml *aml);

void nb_aml_scope_begin(NbAml *aml, const char *path);
void nb_aml_device_begin(NbAml *aml, const char *name);
void nb_aml_method_begin(NbAml *aml, const char *name, unsigned n_args, bool serialized);

/* Closes the innermost Package, Scope, Device or Method. */
void nb_aml_end(NbAml *aml);

/* The encoding of an EISA ID, for tests and for tables outside AML. */
bool nb_aml_eisaid_encode(const char *id, uint32_t *out);

/* Resource descriptors, appended to res; nb_aml_resource_template() wraps
 * them into a Buffer with the end tag, ready for Name(_CRS, ...). */
void nb_aml_res_io(GByteArray *res, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
void nb_aml_res_irq_noflags(GByteArray *res, unsigned irq);
void nb_aml_res_memory32_fixed(GByteArray *res, uint32_t base, uint32_t len, bool writable);
/* Windows a bridge passes on (ResourceProducer, MinFixed, MaxFixed,
 * PosDecode); max is inclusive as in ASL. */
void nb_aml_res_word_bus_number(GByteArray *res, uint16_t min, uint16_t max);
void nb_aml_res_dword_io(GByteArray *res, uint32_t min, uint32_t max);
void nb_aml_res_dword_memory(GByteArray *res, uint32_t min, uint32_t max, bool cacheable);
void nb_aml_res_qword_memory(GByteArray *res, uint64_t min, uint64_t max, bool cacheable);
void nb_aml_resource_template(NbAml *aml, const GByteArray *res);

/* PkgLength as AML encodes it, for a package whose contents (everything
 * after the PkgLength itself) are content_len bytes. Returns the number of
 * bytes written to out (1 to 4), or 0 when it is too long for AML. */
unsigned nb_aml_pkg_length_encode(size_t content_len, uint8_t out[4]);
