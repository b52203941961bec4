/* The bulk-import fast path: plain ADI records -> binary COPY rows, in one pass, without the GIL.

   It takes only records that the Python path (AdiParser + normalize + psycopg's binary COPY
   formatter) would turn into a row with no repair, warning or reject, and writes exactly the bytes
   that path writes (tests/ingest/test_fastadi.py compares the two). At the first record that is
   anything else (multi-line, a bad value, a repeated field, a control tag, a record that is not
   complete yet, a non-ASCII value it cannot judge) it stops and returns; the Python path takes that
   record. So every rule lives in the Python code, and this file only knows the common case of each.

   Non-ASCII values (names, QTHs, comments of real logs) are taken in the fields that go to `extra`
   when their declared byte length ends at a separator (FACTS 1.2: no repair needed) and they are
   valid UTF-8, or else Latin-1 with no byte that could continue a UTF-8 character (0x80-0xBF), so
   that the Python path's character-count repair cannot apply either. Column fields stay ASCII: the
   Python path strips and upper-cases them with Unicode rules.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* qsos columns in model.QSO_COLUMNS order (hamsrv/ingest/copy.py checks that on import). */
enum {
    C_CALL, C_START_AT, C_END_AT, C_BAND, C_BAND_RX, C_MODE, C_SUBMODE, C_FREQ, C_FREQ_RX, C_RST_SENT,
    C_RST_RCVD, C_GRIDSQUARE, C_MY_GRIDSQUARE, C_STATION_CALLSIGN, C_OPERATOR, C_DXCC, C_QSL_SENT,
    C_QSL_RCVD, C_QSLSDATE, C_QSLRDATE, C_LOTW_QSL_SENT, C_LOTW_QSL_RCVD, C_LOTW_QSLSDATE,
    C_LOTW_QSLRDATE, C_EQSL_QSL_SENT, C_EQSL_QSL_RCVD, C_EQSL_QSLSDATE, C_EQSL_QSLRDATE, C_EXTRA,
    N_COLUMNS
};
static const char *COLUMN_NAMES[N_COLUMNS] = {
    "call", "start_at", "end_at", "band", "band_rx", "mode", "submode", "freq", "freq_rx", "rst_sent",
    "rst_rcvd", "gridsquare", "my_gridsquare", "station_callsign", "operator", "dxcc", "qsl_sent",
    "qsl_rcvd", "qslsdate", "qslrdate", "lotw_qsl_sent", "lotw_qsl_rcvd", "lotw_qslsdate",
    "lotw_qslrdate", "eqsl_qsl_sent", "eqsl_qsl_rcvd", "eqsl_qslsdate", "eqsl_qslrdate", "extra"};

/* How each ADIF field becomes a column (hamsrv/ingest/normalize.py); other fields go to `extra`.
   K_CROSS fields need other fields too: write_row() takes them by their F_ index below. */
enum kind { K_CROSS, K_TEXT, K_UPPER, K_DXCC, K_SENT, K_RCVD, K_DATE };
typedef struct { const char *name; int kind; int column; } field_spec;
static const field_spec FIELDS[] = {
    {"CALL", K_CROSS, -1}, {"QSO_DATE", K_CROSS, -1}, {"TIME_ON", K_CROSS, -1},
    {"TIME_OFF", K_CROSS, -1}, {"QSO_DATE_OFF", K_CROSS, -1}, {"BAND", K_CROSS, -1},
    {"BAND_RX", K_CROSS, -1}, {"FREQ", K_CROSS, -1}, {"FREQ_RX", K_CROSS, -1},
    {"MODE", K_CROSS, -1}, {"SUBMODE", K_CROSS, -1}, {"RST_SENT", K_TEXT, C_RST_SENT},
    {"RST_RCVD", K_TEXT, C_RST_RCVD}, {"GRIDSQUARE", K_TEXT, C_GRIDSQUARE},
    {"MY_GRIDSQUARE", K_TEXT, C_MY_GRIDSQUARE}, {"STATION_CALLSIGN", K_UPPER, C_STATION_CALLSIGN},
    {"OPERATOR", K_UPPER, C_OPERATOR}, {"DXCC", K_DXCC, C_DXCC}, {"QSL_SENT", K_SENT, C_QSL_SENT},
    {"QSL_RCVD", K_RCVD, C_QSL_RCVD}, {"QSLSDATE", K_DATE, C_QSLSDATE}, {"QSLRDATE", K_DATE, C_QSLRDATE},
    {"LOTW_QSL_SENT", K_SENT, C_LOTW_QSL_SENT}, {"LOTW_QSL_RCVD", K_RCVD, C_LOTW_QSL_RCVD},
    {"LOTW_QSLSDATE", K_DATE, C_LOTW_QSLSDATE}, {"LOTW_QSLRDATE", K_DATE, C_LOTW_QSLRDATE},
    {"EQSL_QSL_SENT", K_SENT, C_EQSL_QSL_SENT}, {"EQSL_QSL_RCVD", K_RCVD, C_EQSL_QSL_RCVD},
    {"EQSL_QSLSDATE", K_DATE, C_EQSL_QSLSDATE}, {"EQSL_QSLRDATE", K_DATE, C_EQSL_QSLRDATE},
};
#define N_FIELDS ((int)(sizeof(FIELDS) / sizeof(FIELDS[0])))
/* FIELDS indices of the K_CROSS fields: keep in step with the first entries of FIELDS. */
enum { F_CALL, F_QSO_DATE, F_TIME_ON, F_TIME_OFF, F_QSO_DATE_OFF, F_BAND, F_BAND_RX, F_FREQ, F_FREQ_RX,
       F_MODE, F_SUBMODE };

#define MAX_NAME 64        /* longer field names go to the Python path */
#define MAX_EXTRA 256      /* fields per record that go to `extra` */
#define MAX_MODE_CHARS 64  /* normalize.MAX_MODE_CHARS */
#define MAX_CALL_LEN 32    /* model.MAX_CALL_LEN */
#define US_PER_DAY 86400000000LL

/* ------------------------------------------------------------------ tables set by configure() */
typedef struct { char *name; double lo, hi; } band;
static band *bands;
static int n_bands;

/* A string set/map with open addressing: ACTIVE_MODES (value NULL) and SUBMODE_PARENT. */
typedef struct { char *key; size_t len; char *value; } slot;
typedef struct { slot *slots; size_t mask; } table;
static table active_modes, submode_parent;
static int configured;
static int field_of[N_COLUMNS];  /* FIELDS index of each one-field column (rst_sent onwards) */
static uint64_t field_hash[N_FIELDS];  /* hash() of each FIELDS name: a record's field names are
                                          matched by hash first (real logs carry 20-40 fields) */

static uint64_t hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static const slot *lookup(const table *t, const char *s, size_t n) {
    for (size_t i = hash(s, n) & t->mask;; i = (i + 1) & t->mask) {
        const slot *e = &t->slots[i];
        if (e->key == NULL) return NULL;
        if (e->len == n && memcmp(e->key, s, n) == 0) return e;
    }
}

static char *copy_utf8(PyObject *s, Py_ssize_t *len) {
    const char *text = PyUnicode_AsUTF8AndSize(s, len);
    if (text == NULL) return NULL;
    char *copy = PyMem_RawMalloc((size_t)*len + 1);
    if (copy == NULL) { PyErr_NoMemory(); return NULL; }
    memcpy(copy, text, (size_t)*len + 1);
    return copy;
}

/* keys: an iterable of str; values: a dict (map) or NULL (set). Tables are never freed: one per process. */
static int fill_table(table *t, PyObject *keys, PyObject *values) {
    Py_ssize_t n = PyObject_Length(keys);
    if (n < 0) return -1;
    size_t size = 16;
    while (size < (size_t)n * 4) size <<= 1;
    t->slots = PyMem_RawCalloc(size, sizeof(slot));
    if (t->slots == NULL) { PyErr_NoMemory(); return -1; }
    t->mask = size - 1;
    PyObject *it = PyObject_GetIter(keys), *key;
    if (it == NULL) return -1;
    while ((key = PyIter_Next(it)) != NULL) {
        Py_ssize_t klen, vlen;
        char *k = copy_utf8(key, &klen), *v = NULL;
        if (k != NULL && values != NULL) {
            PyObject *value = PyDict_GetItemWithError(values, key);
            v = value ? copy_utf8(value, &vlen) : NULL;
            if (v == NULL && !PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "missing value");
        }
        Py_DECREF(key);
        if (k == NULL || (values != NULL && v == NULL)) { Py_DECREF(it); return -1; }
        size_t i = hash(k, (size_t)klen) & t->mask;
        while (t->slots[i].key != NULL) i = (i + 1) & t->mask;
        t->slots[i] = (slot){k, (size_t)klen, v};
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* normalize._with_entity's cty.dat table for calls without '/': exact calls and prefixes -> the
   entity as "dxcc\tcont\tcqz\tname" ("" for an entity without a DXCC number). */
typedef struct { table exact, prefixes; size_t longest; } entity_tables;
static entity_tables *entities;  /* NULL until set_entities(): records it would fill go to Python */

/* set_entities(exact, prefixes, longest). A table in use by an encode() in another thread stays
   valid: tables are not freed (normalize.use_entities pushes a table only when it changes). */
static PyObject *set_entities(PyObject *self, PyObject *args) {
    PyObject *exact, *prefixes;
    Py_ssize_t longest;
    if (!PyArg_ParseTuple(args, "O!O!n", &PyDict_Type, &exact, &PyDict_Type, &prefixes, &longest)) return NULL;
    entity_tables *e = PyMem_RawCalloc(1, sizeof(entity_tables));
    if (e == NULL) return PyErr_NoMemory();
    if (fill_table(&e->exact, exact, exact) < 0 || fill_table(&e->prefixes, prefixes, prefixes) < 0) return NULL;
    e->longest = (size_t)longest;
    entities = e;
    Py_RETURN_NONE;
}

/* CtyTable.lookup for a call without '/': exact call first, then the longest prefix. */
static const char *entity_of(const entity_tables *e, const char *call, size_t n) {
    const slot *hit = lookup(&e->exact, call, n);
    for (size_t k = n < e->longest ? n : e->longest; hit == NULL && k > 0; k--) hit = lookup(&e->prefixes, call, k);
    return hit != NULL ? hit->value : NULL;
}

/* configure(bands, active_modes, submode_parent): the tables of hamsrv.model and normalize. */
static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *band_list, *modes, *parents;
    if (!PyArg_ParseTuple(args, "OOO!", &band_list, &modes, &PyDict_Type, &parents)) return NULL;
    if (configured) Py_RETURN_NONE;
    PyObject *seq = PySequence_Fast(band_list, "bands must be a sequence");
    if (seq == NULL) return NULL;
    n_bands = (int)PySequence_Fast_GET_SIZE(seq);
    bands = PyMem_RawCalloc((size_t)n_bands, sizeof(band));
    if (bands == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (int i = 0; i < n_bands; i++) {
        PyObject *name;
        Py_ssize_t len;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "Udd", &name, &bands[i].lo, &bands[i].hi)
            || (bands[i].name = copy_utf8(name, &len)) == NULL) {
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    if (fill_table(&active_modes, modes, NULL) < 0 || fill_table(&submode_parent, parents, parents) < 0)
        return NULL;
    configured = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------ output buffer */
typedef struct { char *data; size_t len, cap; int failed; } buffer;

static inline void reserve(buffer *b, size_t more) {
    if (b->len + more <= b->cap || b->failed) return;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more) cap *= 2;
    char *data = realloc(b->data, cap);
    if (data == NULL) { b->failed = 1; return; }
    b->data = data;
    b->cap = cap;
}

static inline void put(buffer *b, const void *src, size_t n) {
    reserve(b, n);
    if (b->failed) return;
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void put_u16(buffer *b, uint16_t v) { unsigned char x[2] = {v >> 8, v}; put(b, x, 2); }
static void put_u32(buffer *b, uint32_t v) {
    unsigned char x[4] = {v >> 24, v >> 16, v >> 8, v};
    put(b, x, 4);
}
static void put_u64(buffer *b, uint64_t v) { put_u32(b, (uint32_t)(v >> 32)); put_u32(b, (uint32_t)v); }
static void put_null(buffer *b) { put_u32(b, 0xFFFFFFFFu); }
static void put_text(buffer *b, const char *s, size_t n) { put_u32(b, (uint32_t)n); put(b, s, n); }
static void put_int8(buffer *b, int64_t v) { put_u32(b, 8); put_u64(b, (uint64_t)v); }
static void put_name(buffer *b, const char *name) {
    if (name) put_text(b, name, strlen(name)); else put_null(b);
}

/* ---------------------------------------------------------------------------- value checks */
typedef struct { const unsigned char *p; Py_ssize_t n; } span;  /* n < 0: field absent */

static int has(span v) { return v.n > 0; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static unsigned char upper(unsigned char c) { return (c >= 'a' && c <= 'z') ? c - 32 : c; }
static unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Values the Python code would strip: left to it. */
static int padded(span v) {
    return v.n > 0 && (v.p[0] == ' ' || v.p[0] == '\t' || v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t');
}

static int digits(span v, Py_ssize_t from, Py_ssize_t count) {
    int n = 0;
    for (Py_ssize_t i = from; i < from + count; i++) n = n * 10 + (v.p[i] - '0');
    return n;
}

static int all_digits(span v) {
    for (Py_ssize_t i = 0; i < v.n; i++)
        if (!is_digit(v.p[i])) return 0;
    return 1;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}
#define PG_EPOCH_DAYS 10957  /* 2000-01-01, PostgreSQL's epoch, in days from 1970-01-01 */

/* An ADIF date (YYYYMMDD, 1930 or later) as days since 2000-01-01; 0 = ok. */
static int parse_date(span v, int64_t *days) {
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (v.n != 8 || !all_digits(v)) return -1;
    int y = digits(v, 0, 4), m = digits(v, 4, 2), d = digits(v, 6, 2);
    if (y < 1930 || m < 1 || m > 12 || d < 1) return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > month_days[m - 1] + (m == 2 && leap)) return -1;
    *days = days_from_civil(y, m, d) - PG_EPOCH_DAYS;
    return 0;
}

/* An ADIF time (HHMM or HHMMSS) as microseconds since midnight; 0 = ok. */
static int parse_time(span v, int64_t *us) {
    if ((v.n != 4 && v.n != 6) || !all_digits(v)) return -1;
    int h = digits(v, 0, 2), m = digits(v, 2, 2), s = v.n == 6 ? digits(v, 4, 2) : 0;
    if (h > 23 || m > 59 || s > 59) return -1;
    *us = ((int64_t)h * 3600 + m * 60 + s) * 1000000LL;
    return 0;
}

/* Frequency in MHz: digits with at most one '.', as Python's float() reads it; 0 = ok. */
static int parse_mhz(span v, double *mhz) {
    char text[64];
    int dots = 0, seen_digit = 0;
    if (v.n >= (Py_ssize_t)sizeof(text)) return -1;
    for (Py_ssize_t i = 0; i < v.n; i++) {
        if (v.p[i] == '.') dots++;
        else if (is_digit(v.p[i])) seen_digit = 1;
        else return -1;
    }
    if (dots > 1 || !seen_digit) return -1;
    memcpy(text, v.p, (size_t)v.n);
    text[v.n] = 0;
    *mhz = strtod(text, NULL);  /* correctly rounded, like float() */
    return 0;  /* at most 63 characters: always finite */
}

static const char *band_for_mhz(double mhz) {
    const band *found = NULL;
    for (int i = 0; i < n_bands && bands[i].lo <= mhz; i++) found = &bands[i];
    return (found != NULL && mhz <= found->hi) ? found->name : NULL;
}

/* BAND as the canonical lower-case name; NULL when it is not one. */
/* normalize._in_band: within 10 Hz of the band's edges */
static int in_band(const char *name, double mhz) {
    for (int i = 0; i < n_bands; i++)
        if (bands[i].name == name) return bands[i].lo - 1e-5 <= mhz && mhz <= bands[i].hi + 1e-5;
    return 0;
}
/* normalize._checked: a FREQ outside its BAND that fits it when read as kHz or Hz becomes that many
   MHz, rounded like Python's round(x, 6) (printf and strtod round exactly, as Python's dtoa does) */
static int unit_slip_repaired(const char *band, double *mhz) {
    static const double slips[] = {1e-3, 1e-6};
    char text[64];
    for (int i = 0; i < 2; i++) {
        double scaled = *mhz * slips[i];
        if (in_band(band, scaled)) {
            snprintf(text, sizeof text, "%.6f", scaled);
            *mhz = strtod(text, NULL);
            return 1;
        }
    }
    return 0;
}
/* model.valid_grid: 2, 4, 6 or 8 characters, AA00aa00 */
static int valid_grid(span v) {
    if (v.n != 2 && v.n != 4 && v.n != 6 && v.n != 8) return 0;
    for (Py_ssize_t i = 0; i < v.n; i++) {
        unsigned char c = upper(v.p[i]);
        int pair = (int)(i / 2);
        if (pair == 1 || pair == 3) { if (c < '0' || c > '9') return 0; }
        else if (c < 'A' || c > (pair == 0 ? 'R' : 'X')) return 0;
    }
    return 1;
}
static const char *band_named(span v) {
    char name[16];
    if (v.n >= (Py_ssize_t)sizeof(name)) return NULL;
    for (Py_ssize_t i = 0; i < v.n; i++) name[i] = (char)lower(v.p[i]);
    for (int i = 0; i < n_bands; i++)
        if ((Py_ssize_t)strlen(bands[i].name) == v.n && memcmp(bands[i].name, name, (size_t)v.n) == 0)
            return bands[i].name;
    return NULL;
}

/* model.normalize_call: letters and digits in '/'-separated parts, with a letter and a digit. */
static int valid_call(const char *s, Py_ssize_t n) {
    int letter = 0, digit = 0;
    if (n == 0 || n > MAX_CALL_LEN || s[0] == '/' || s[n - 1] == '/') return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_upper(c)) letter = 1;
        else if (is_digit(c)) digit = 1;
        else if (c != '/' || s[i + 1] == '/') return 0;
    }
    return letter && digit;
}

static void copy_upper(char *dst, span v) {
    for (Py_ssize_t i = 0; i < v.n; i++) dst[i] = (char)upper(v.p[i]);
}

static void put_upper(buffer *b, span v) {
    put_u32(b, (uint32_t)v.n);
    reserve(b, (size_t)v.n);
    if (b->failed) return;
    copy_upper(b->data + b->len, v);
    b->len += (size_t)v.n;
}

static void put_float8(buffer *b, span v, double value) {
    uint64_t bits;
    if (!has(v)) { put_null(b); return; }
    memcpy(&bits, &value, 8);
    put_u32(b, 8);
    put_u64(b, bits);
}

/* ---------------------------------------------------------------------------------- records */
typedef struct {
    span known[N_FIELDS];
    const unsigned char *extra_name[MAX_EXTRA];
    uint64_t extra_hash[MAX_EXTRA];  /* hash() of the upper-case name */
    Py_ssize_t extra_name_len[MAX_EXTRA];
    span extra_value[MAX_EXTRA];
    unsigned char extra_encoding[MAX_EXTRA];  /* ASCII, UTF8 or LATIN1 */
    int n_extra;
} record;

/* A non-empty field of that (upper-case) name among the record's `extra` fields. */
static int has_extra(const record *r, const char *key) {
    size_t n = strlen(key);
    for (int i = 0; i < r->n_extra; i++) {
        if ((size_t)r->extra_name_len[i] != n || r->extra_value[i].n <= 0) continue;
        size_t k = 0;
        while (k < n && upper(r->extra_name[i][k]) == (unsigned char)key[k]) k++;
        if (k == n) return 1;
    }
    return 0;
}

enum { ASCII, UTF8, LATIN1 };

/* Length of the UTF-8 character at s[0] (as strict as Python's decoder: no overlong forms, no
   surrogates, nothing past U+10FFFF), 0 when it is not one. */
static int utf8_char(const unsigned char *s, Py_ssize_t n, uint32_t *code) {
    unsigned char c = s[0];
    int len;
    unsigned char lo = 0x80, hi = 0xBF;  /* range of the second byte */
    if (c < 0x80) { *code = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    uint32_t v = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *code = v;
    return len;
}

/* How a non-ASCII value is decoded (adif._decode), or -1 when only the Python path can say. */
static int encoding_of(const unsigned char *s, Py_ssize_t n) {
    int continuation = 0, valid = 1;
    uint32_t code;
    for (Py_ssize_t i = 0; i < n; i++) if (s[i] >= 0x80 && s[i] <= 0xBF) continuation = 1;
    for (Py_ssize_t i = 0; i < n && valid;) {
        int len = utf8_char(s + i, n - i, &code);
        if (len == 0) valid = 0;
        i += len;
    }
    if (valid) return UTF8;
    return continuation ? -1 : LATIN1;
}

static void put_json_escape(buffer *b, uint32_t code) {
    static const char hex[] = "0123456789abcdef";
    char e[6] = {'\\', 'u', hex[(code >> 12) & 15], hex[(code >> 8) & 15], hex[(code >> 4) & 15], hex[code & 15]};
    put(b, e, 6);
}

/* A JSON string as json.dumps writes it (ensure_ascii: non-ASCII characters as \\uXXXX escapes,
   surrogate pairs beyond U+FFFF). Values never hold other control characters than tab. */
static void write_json_string(buffer *b, const unsigned char *s, Py_ssize_t n, int upper_case, int encoding) {
    put(b, "\"", 1);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t run = i;  /* bytes that need no escape go out in one piece */
        while (!upper_case && run < n && s[run] < 0x80 && s[run] != '"' && s[run] != '\\' && s[run] != '\t') run++;
        if (run > i) {
            put(b, s + i, (size_t)(run - i));
            i = run - 1;
        }
        else if (upper_case) { unsigned char c = upper(s[i]); put(b, &c, 1); }
        else if (s[i] == '"') put(b, "\\\"", 2);
        else if (s[i] == '\\') put(b, "\\\\", 2);
        else if (s[i] == '\t') put(b, "\\t", 2);
        else if (s[i] < 0x80) put(b, &s[i], 1);
        else if (encoding == LATIN1) put_json_escape(b, s[i]);
        else {
            uint32_t code = 0;
            i += utf8_char(s + i, n - i, &code) - 1;  /* checked valid by encoding_of() */
            if (code >= 0x10000) {
                code -= 0x10000;
                put_json_escape(b, 0xD800 | (code >> 10));
                put_json_escape(b, 0xDC00 | (code & 0x3FF));
            } else put_json_escape(b, code);
        }
    }
    put(b, "\"", 1);
}

/* One row (owner_id + QSO_COLUMNS) as normalize() + psycopg would write it; -1 when the record
   needs the Python path. `json` is scratch space for the extra column. */
static int write_row(buffer *out, buffer *json, const record *r, int64_t owner_id, int lotw_report,
                     const entity_tables *ents, int64_t *start_us) {
    const span *f = r->known;
    char call[MAX_CALL_LEN], mode[MAX_MODE_CHARS], submode[MAX_MODE_CHARS];
    int64_t start_day, time_on, end_day, time_off;
    double freq = 0, freq_rx = 0;
    const char *band_name = NULL, *band_rx_name = NULL;
    for (int i = 0; i < N_FIELDS; i++)
        if (padded(f[i])) return -1;

    /* CALL, QSO_DATE, TIME_ON are required */
    if (!has(f[F_CALL]) || f[F_CALL].n > MAX_CALL_LEN) return -1;
    copy_upper(call, f[F_CALL]);
    if (!valid_call(call, f[F_CALL].n)) return -1;
    if (!has(f[F_QSO_DATE]) || parse_date(f[F_QSO_DATE], &start_day) < 0) return -1;
    if (!has(f[F_TIME_ON]) || parse_time(f[F_TIME_ON], &time_on) < 0) return -1;
    *start_us = start_day * US_PER_DAY + time_on;
    int has_end = has(f[F_TIME_OFF]), has_date_off = has(f[F_QSO_DATE_OFF]);
    if (has_end && parse_time(f[F_TIME_OFF], &time_off) < 0) return -1;
    if (has_date_off && parse_date(f[F_QSO_DATE_OFF], &end_day) < 0) return -1;
    if (has_end && !has_date_off) {
        end_day = start_day + (time_off < time_on);
        if (end_day > days_from_civil(9999, 12, 31) - PG_EPOCH_DAYS) return -1;  /* Python rejects it */
    }

    if (has(f[F_FREQ]) && parse_mhz(f[F_FREQ], &freq) < 0) return -1;
    if (has(f[F_FREQ_RX]) && parse_mhz(f[F_FREQ_RX], &freq_rx) < 0) return -1;
    if (has(f[F_BAND]) && (band_name = band_named(f[F_BAND])) == NULL) return -1;
    if (has(f[F_BAND_RX]) && (band_rx_name = band_named(f[F_BAND_RX])) == NULL) return -1;
    /* normalize._checked: BAND and FREQ agree (a unit slip is repaired there), a QSO has a band */
    if (band_name != NULL && has(f[F_FREQ]) && !in_band(band_name, freq)
        && !unit_slip_repaired(band_name, &freq)) return -1;
    if (band_rx_name != NULL && has(f[F_FREQ_RX]) && !in_band(band_rx_name, freq_rx)
        && !unit_slip_repaired(band_rx_name, &freq_rx)) return -1;
    if (band_name == NULL && has(f[F_FREQ])) band_name = band_for_mhz(freq);
    if (band_rx_name == NULL && has(f[F_FREQ_RX])) band_rx_name = band_for_mhz(freq_rx);
    if (band_name == NULL) return -1;
    if (has(f[field_of[C_GRIDSQUARE]]) && !valid_grid(f[field_of[C_GRIDSQUARE]])) return -1;
    if (has(f[field_of[C_MY_GRIDSQUARE]]) && !valid_grid(f[field_of[C_MY_GRIDSQUARE]])) return -1;
    if (has_end && end_day * US_PER_DAY + time_off < *start_us) return -1;
    if (*start_us > ((int64_t)time(NULL) - PG_EPOCH_DAYS * 86400LL + 86400) * 1000000LL) return -1;
    /* normalize._with_entity: DXCC, COUNTRY, CONT and CQZ from cty.dat where the record has none;
       a DXCC the record carries is kept, and then only the same entity fills the others */
    span dxcc_field = f[field_of[C_DXCC]];
    int need_country = !has_extra(r, "COUNTRY"), need_cont = !has_extra(r, "CONT"), need_cqz = !has_extra(r, "CQZ");
    const char *fill = NULL;
    long fill_dxcc = 0;
    if (!has(dxcc_field) || need_country || need_cont || need_cqz) {
        if (ents == NULL || memchr(call, '/', (size_t)f[F_CALL].n) != NULL) return -1;  /* portable: Python */
        if (has(dxcc_field) && (dxcc_field.n > 4 || !all_digits(dxcc_field))) return -1;
        const char *found = entity_of(ents, call, (size_t)f[F_CALL].n);
        if (found != NULL && found[0] != '\0') {
            fill_dxcc = strtol(found, NULL, 10);
            if (!has(dxcc_field) || digits(dxcc_field, 0, dxcc_field.n) == fill_dxcc) fill = found;
        }
    }

    /* MODE and SUBMODE (normalize._mode) */
    Py_ssize_t mode_len = has(f[F_MODE]) ? f[F_MODE].n : 0, sub_len = has(f[F_SUBMODE]) ? f[F_SUBMODE].n : 0;
    if (mode_len > MAX_MODE_CHARS || sub_len > MAX_MODE_CHARS) return -1;
    copy_upper(mode, (span){f[F_MODE].p, mode_len});
    copy_upper(submode, (span){f[F_SUBMODE].p, sub_len});
    const char *mode_out = mode, *sub_out = submode;
    size_t mode_out_len = (size_t)mode_len, sub_out_len = (size_t)sub_len;
    if (mode_len == 0) {
        const slot *parent = sub_len ? lookup(&submode_parent, submode, (size_t)sub_len) : NULL;
        mode_out = parent ? parent->value : NULL;
        mode_out_len = parent ? strlen(parent->value) : 0;
    } else if (!lookup(&active_modes, mode, (size_t)mode_len)) {
        const slot *parent = lookup(&submode_parent, mode, (size_t)mode_len);
        if (parent != NULL) {
            mode_out = parent->value;
            mode_out_len = strlen(parent->value);
            if (sub_len == 0) { sub_out = mode; sub_out_len = (size_t)mode_len; }
        }
    }
    if (mode_out != NULL && mode_out_len > MAX_MODE_CHARS) return -1;
    /* normalize._checked: MODE from the ADIF enumeration, SUBMODE one of that MODE's */
    if (mode_out != NULL && !lookup(&active_modes, mode_out, mode_out_len)) return -1;
    if (sub_out_len) {
        const slot *parent = lookup(&submode_parent, sub_out, sub_out_len);
        if (parent == NULL || mode_out == NULL || strlen(parent->value) != mode_out_len
            || memcmp(parent->value, mode_out, mode_out_len) != 0)
            return -1;
    }

    /* one-field columns: all checked before anything is written */
    for (int i = F_SUBMODE + 1; i < N_FIELDS; i++) {
        span v = f[i];
        int kind = FIELDS[i].kind;
        int64_t days;
        if (!has(v)) continue;
        if ((kind == K_SENT || kind == K_RCVD)
            && (v.n != 1 || !strchr(kind == K_SENT ? "YNRQI" : "YNRIV", upper(v.p[0]))))
            return -1;
        if (kind == K_DXCC && (v.n > 4 || !all_digits(v))) return -1;
        if (kind == K_DATE && parse_date(v, &days) < 0) return -1;
    }
    int swap = lotw_report && !has(f[field_of[C_LOTW_QSL_RCVD]]) && !has(f[field_of[C_LOTW_QSLRDATE]]);

    /* the row */
    put_u16(out, N_COLUMNS + 1);
    put_int8(out, owner_id);
    put_text(out, call, (size_t)f[F_CALL].n);
    put_int8(out, *start_us);
    if (has_end) put_int8(out, end_day * US_PER_DAY + time_off);
    else put_null(out);
    put_name(out, band_name);
    put_name(out, band_rx_name);
    if (mode_out) put_text(out, mode_out, mode_out_len); else put_null(out);
    if (sub_out_len) put_text(out, sub_out, sub_out_len); else put_null(out);
    put_float8(out, f[F_FREQ], freq);
    put_float8(out, f[F_FREQ_RX], freq_rx);
    for (int column = C_RST_SENT; column < C_EXTRA; column++) {
        int i = field_of[column], kind = FIELDS[i].kind;
        span v = f[i];
        if (swap) {  /* a LoTW report's QSL_RCVD/QSLRDATE are LoTW confirmations */
            if (column == C_QSL_RCVD || column == C_QSLRDATE) v.n = -1;
            else if (column == C_LOTW_QSL_RCVD) v = f[field_of[C_QSL_RCVD]];
            else if (column == C_LOTW_QSLRDATE) v = f[field_of[C_QSLRDATE]];
        }
        int64_t days;
        if (!has(v) && column == C_DXCC && fill != NULL) { put_u32(out, 4); put_u32(out, (uint32_t)fill_dxcc); }
        else if (!has(v)) put_null(out);
        else if (kind == K_TEXT) put_text(out, (const char *)v.p, (size_t)v.n);
        else if (kind == K_UPPER || kind == K_SENT || kind == K_RCVD) put_upper(out, v);
        else if (kind == K_DXCC) { put_u32(out, 4); put_u32(out, (uint32_t)digits(v, 0, v.n)); }
        else { parse_date(v, &days); put_u32(out, 4); put_u32(out, (uint32_t)(int32_t)days); }
    }

    /* extra: the other fields, then QSO_DATE_OFF when there is no TIME_OFF; json.dumps' spacing */
    json->len = 0;
    put(json, "\x01{", 2);
    int first = 1;
    for (int i = 0; i < r->n_extra; i++) {
        if (r->extra_value[i].n <= 0) continue;
        if (!first) put(json, ", ", 2);
        first = 0;
        write_json_string(json, r->extra_name[i], r->extra_name_len[i], 1, ASCII);
        put(json, ": ", 2);
        write_json_string(json, r->extra_value[i].p, r->extra_value[i].n, 0, r->extra_encoding[i]);
    }
    if (!has_end && has_date_off) {
        if (!first) put(json, ", ", 2);
        write_json_string(json, (const unsigned char *)"QSO_DATE_OFF", 12, 0, ASCII);
        put(json, ": ", 2);
        write_json_string(json, f[F_QSO_DATE_OFF].p, f[F_QSO_DATE_OFF].n, 0, ASCII);
    }
    if (fill != NULL) {  /* "dxcc\tcont\tcqz\tname": appended in normalize's order */
        const char *cont = strchr(fill, '\t') + 1, *cqz = strchr(cont, '\t') + 1, *name = strchr(cqz, '\t') + 1;
        const struct { int need; const char *key; const char *value; size_t len; } add[3] = {
            {need_country, "COUNTRY", name, strlen(name)}, {need_cont, "CONT", cont, (size_t)(cqz - 1 - cont)},
            {need_cqz, "CQZ", cqz, (size_t)(name - 1 - cqz)}};
        for (int i = 0; i < 3; i++) {
            if (!add[i].need) continue;
            if (!first) put(json, ", ", 2);
            first = 0;
            write_json_string(json, (const unsigned char *)add[i].key, (Py_ssize_t)strlen(add[i].key), 0, ASCII);
            put(json, ": ", 2);
            write_json_string(json, (const unsigned char *)add[i].value, (Py_ssize_t)add[i].len, 0, UTF8);
        }
    }
    put(json, "}", 1);
    if (json->failed) return -1;
    put_u32(out, (uint32_t)json->len);
    put(out, json->data, json->len);
    return 0;
}

/* One record from t[pos]: 1 when it is complete and every tag and value is plain (see the top of
   this file), 0 when the Python path must take it (or it is not complete in the input yet). */
static int scan_record(const unsigned char *t, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t max_field,
                       Py_ssize_t max_record, record *r, Py_ssize_t *record_start, Py_ssize_t *next) {
    const unsigned char *lt = memchr(t + pos, '<', (size_t)(end - pos));
    int n_fields = 0;
    for (int i = 0; i < N_FIELDS; i++) r->known[i].n = -1;
    r->n_extra = 0;
    if (lt == NULL) return 0;
    Py_ssize_t p = lt - t;
    *record_start = p;
    for (;;) {  /* t[p] == '<' */
        Py_ssize_t q = p + 1, name = q, length = 0;
        while (q < end && q - name <= MAX_NAME && (is_digit(t[q]) || is_upper(upper(t[q])) || t[q] == '_')) q++;
        Py_ssize_t name_len = q - name;
        if (q >= end || name_len == 0 || name_len > MAX_NAME) return 0;
        if (t[q] == '>') {  /* only <EOR> ends a plain record */
            if (name_len != 3 || upper(t[name]) != 'E' || upper(t[name + 1]) != 'O' || upper(t[name + 2]) != 'R'
                || n_fields == 0 || q + 1 - *record_start > max_record)
                return 0;
            *next = q + 1;
            return 1;
        }
        if (t[q++] != ':') return 0;
        Py_ssize_t first_digit = q;
        while (q < end && is_digit(t[q]) && q - first_digit < 9) length = length * 10 + (t[q++] - '0');
        if (q == first_digit || q >= end) return 0;
        if (t[q] == ':') {  /* a data type indicator: not needed here */
            Py_ssize_t type = ++q;
            while (q < end && q - type < 20 && is_upper(upper(t[q]))) q++;
            if (q >= end) return 0;
        }
        if (t[q++] != '>' || length > max_field || q + length >= end) return 0;
        int non_ascii = 0, encoding = ASCII;
        for (Py_ssize_t k = q; k < q + length; k++) {
            if ((t[k] < 0x20 && t[k] != '\t') || t[k] == 0x7F || t[k] == '<') return 0;
            non_ascii |= t[k] >= 0x80;
        }
        span value = {t + q, length};
        char key[MAX_NAME];
        copy_upper(key, (span){t + name, name_len});
        uint64_t key_hash = hash(key, (size_t)name_len);
        int known = -1;
        for (int i = 0; i < N_FIELDS && known < 0; i++)
            if (field_hash[i] == key_hash && memcmp(FIELDS[i].name, key, (size_t)name_len) == 0
                && FIELDS[i].name[name_len] == 0)
                known = i;
        if (non_ascii) {  /* see the top of this file */
            unsigned char after = t[q + length];
            if (known >= 0 || !(after == '<' || after == ' ' || after == '\t' || after == '\r' || after == '\n')
                || (encoding = encoding_of(value.p, value.n)) < 0)
                return 0;
        }
        if (known >= 0) {
            if (r->known[known].n >= 0) return 0;  /* repeated: the Python path reports it */
            r->known[known] = value;
        } else {
            if (r->n_extra == MAX_EXTRA) return 0;
            for (int i = 0; i < r->n_extra; i++) {
                if (r->extra_hash[i] != key_hash || r->extra_name_len[i] != name_len) continue;
                Py_ssize_t k = 0;
                while (k < name_len && upper(r->extra_name[i][k]) == (unsigned char)key[k]) k++;
                if (k == name_len) return 0;
            }
            r->extra_name[r->n_extra] = t + name;
            r->extra_name_len[r->n_extra] = name_len;
            r->extra_hash[r->n_extra] = key_hash;
            r->extra_encoding[r->n_extra] = (unsigned char)encoding;
            r->extra_value[r->n_extra++] = value;
        }
        n_fields++;
        lt = memchr(t + q + length, '<', (size_t)(end - q - length));
        if (lt == NULL) return 0;
        p = lt - t;
    }
}

/* encode(text, pos, max_records, owner_id, lotw_report, max_field_bytes, max_record_bytes, out)
   -> (pos, records, last_record_start, min_start_us, max_start_us)

   Appends to the bytearray `out` the binary COPY rows (owner_id + QSO_COLUMNS) of the plain records
   from text[pos:], a str holding the input decoded as Latin-1, and returns where it stopped. */
static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *text, *out;
    Py_ssize_t pos, max_records, max_field, max_record, count = 0, last_start = -1;
    long long owner_id;
    int lotw_report;
    if (!PyArg_ParseTuple(args, "UnnLpnnY", &text, &pos, &max_records, &owner_id, &lotw_report,
                          &max_field, &max_record, &out))
        return NULL;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "configure() first");
        return NULL;
    }
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
        PyErr_SetString(PyExc_ValueError, "text must hold Latin-1 characters only");
        return NULL;
    }
    const unsigned char *t = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t end = PyUnicode_GET_LENGTH(text);
    if (pos < 0 || pos > end) {
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    int64_t min_start = INT64_MAX, max_start = INT64_MIN;
    buffer rows = {0}, json = {0};
    const entity_tables *ents = entities;
    Py_BEGIN_ALLOW_THREADS
    record r;
    Py_ssize_t start, next;
    while (count < max_records && !rows.failed
           && scan_record(t, pos, end, max_field, max_record, &r, &start, &next)) {
        size_t mark = rows.len;
        int64_t start_us;
        if (write_row(&rows, &json, &r, owner_id, lotw_report, ents, &start_us) < 0) {
            rows.len = mark;
            break;
        }
        count++;
        last_start = start;
        pos = next;
        if (start_us < min_start) min_start = start_us;
        if (start_us > max_start) max_start = start_us;
    }
    Py_END_ALLOW_THREADS
    free(json.data);
    if (rows.failed) {
        free(rows.data);
        return PyErr_NoMemory();
    }
    Py_ssize_t had = PyByteArray_GET_SIZE(out);
    if (rows.len && PyByteArray_Resize(out, had + (Py_ssize_t)rows.len) < 0) {
        free(rows.data);
        return NULL;
    }
    if (rows.len) memcpy(PyByteArray_AS_STRING(out) + had, rows.data, rows.len);
    free(rows.data);
    return Py_BuildValue("(nnnLL)", pos, count, last_start, (long long)min_start, (long long)max_start);
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, "Set the band and mode tables (once per process)."},
    {"encode", encode, METH_VARARGS, "Plain ADI records -> binary COPY rows."},
    {"set_entities", set_entities, METH_VARARGS, "Set the cty.dat table that fills DXCC, COUNTRY, CONT, CQZ."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_fastadi", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__fastadi(void) {
    for (int column = 0; column < N_COLUMNS; column++) field_of[column] = -1;
    for (int i = 0; i < N_FIELDS; i++) {
        if (FIELDS[i].column >= 0) field_of[FIELDS[i].column] = i;
        field_hash[i] = hash(FIELDS[i].name, strlen(FIELDS[i].name));
    }
    PyObject *m = PyModule_Create(&module), *columns = PyTuple_New(N_COLUMNS);
    if (m == NULL || columns == NULL) return NULL;
    for (int i = 0; i < N_COLUMNS; i++) PyTuple_SET_ITEM(columns, i, PyUnicode_FromString(COLUMN_NAMES[i]));
    if (PyModule_AddObject(m, "COLUMNS", columns) < 0) return NULL;
    return m;
}
