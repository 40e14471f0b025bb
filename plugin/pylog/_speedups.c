/*
 * pylog._speedups: the fast path for plain whole lines, in C: the shipper's
 * and docker logs' (readback).
 *
 * Each function is the compiled twin of a pure-Python reference beside the
 * code that owns its format (pylog/speedups.py says which); tests run both on
 * the same inputs and require the same results, so the Python one is the
 * specification.
 *
 *   scan_plain(batch: list[bytes]) -> (marks: bytes, longest: int) | None
 *       Read stored records (store.records' layout) and, when every one is a
 *       plain whole line with a valid time, return a MARK per record (where its
 *       escaped text ends, where its time starts, its stream, how many fraction
 *       digits it has, its time in ms since the epoch) and the longest escaped
 *       text; else None.
 *
 *   plain_values(batch, marks, heads, mids, tail, headers)
 *       -> list[tuple[bytes, object, int]]
 *       The Kafka records of those lines: value = heads[s] + text + mids[s] +
 *       second + "." + nine fraction digits + "Z" + tail, the stream's headers
 *       object, the time in ms.
 *
 *   encode_records(buf, records, start, key, first_ts, offset, batch_size, alone)
 *       -> (end, max_ts, stop)
 *       Append Kafka records to a v2 record batch being built (shipper.recordbatch).
 *
 *   encode_lines(lines, times, sources, tails) -> bytes | None
 *       Ingest's records (store.records.RecordEncoder): for each whole line,
 *       {"log":"<line, JSON-escaped as Python's json does, each byte that is
 *       not UTF-8 as U+FFFD>" + tails[stream] + time (RFC 3339, Go's trimmed
 *       fraction) + "Z\"}\n"; None for a time that is not an int64 or a
 *       source that is neither stdout nor stderr.
 *
 *   whole_records(buf, max_frame, final, tails) -> (records, count, line_bytes, used) | None
 *       Ingest's frames straight to records, with no object per line: when
 *       every whole frame at the start of buf is a whole line as dockerd writes
 *       it (framing.decode_whole_reference), their records as encode_lines makes
 *       them, how many, the bytes of their lines, and the bytes the frames took;
 *       else None (the driver's careful path counts what is wrong).
 *
 *   plain_frames(batch, marks) -> bytes | None
 *       The ReadLogs body of those lines (readback): a framed protobuf LogEntry
 *       per line (its stream, its time in ns, its text unescaped plus "\n"), or
 *       None when a text holds what only a full JSON decode may judge (an
 *       unknown escape, a lone surrogate, a raw control byte, bytes that are not
 *       UTF-8) or a time is beyond a LogEntry's int64 of ns.
 *
 * Every read is bounds-checked against the record's own length: the input is
 * whatever is in the state directory.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* struct.Struct("<iiBBxxq"): text_end, time_start, stream, frac_len, pad, ms */
#define MARK_SIZE 20

static const char PREFIX[] = "{\"log\":\"";               /* 8 */
static const char STREAM_KEY[] = ",\"stream\":\"";        /* 11 */
static const char TIME_KEY[] = ",\"time\":\"";            /* 9 */
static const char ATTRS_KEY[] = ",\"attrs\":{";           /* 10 */
#define PREFIX_LEN 8
#define STREAM_KEY_LEN 11
#define TIME_KEY_LEN 9
#define ATTRS_KEY_LEN 10
#define SECOND_LEN 19

static void put_i32(unsigned char *p, int32_t v) {
    uint32_t u = (uint32_t)v;
    p[0] = u & 0xff; p[1] = (u >> 8) & 0xff; p[2] = (u >> 16) & 0xff; p[3] = (u >> 24) & 0xff;
}

static int32_t get_i32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    return (int32_t)u;
}

static void put_i64(unsigned char *p, int64_t v) {
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++) p[i] = (u >> (8 * i)) & 0xff;
}

static int64_t get_i64(const unsigned char *p) {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)p[i] << (8 * i);
    return (int64_t)u;
}

static int digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Epoch seconds of "YYYY-MM-DDTHH:MM:SS", valid as time.strptime takes it
 * (year 1-9999, a real date, hour < 24, minute < 60, second <= 61). */
static int second_of(const char *p, int64_t *out) {
    int y, mo, d, h, mi, s;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':') return 0;
    if (!digits(p, 4, &y) || !digits(p + 5, 2, &mo) || !digits(p + 8, 2, &d) ||
        !digits(p + 11, 2, &h) || !digits(p + 14, 2, &mi) || !digits(p + 17, 2, &s))
        return 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 61) return 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap(y))) return 0;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return 1;
}

/* One record; 1 and its mark filled if it is a plain whole line, else 0. */
static int scan_one(const char *p, Py_ssize_t n, int last, unsigned char *mark, Py_ssize_t *text_len) {
    if (n > 0 && p[n - 1] == '\n') {
        n--;
    } else if (!last) {
        return 0;  /* joined with the next one, the buffer would hold one line less */
    }
    if (n > INT32_MAX || n < PREFIX_LEN || memcmp(p, PREFIX, PREFIX_LEN) != 0) return 0;
    /* The escaped text: anything but '"', '\\' and a newline, or '\\' and a
     * character that is not a newline; it ends at the first quote not escaped. */
    Py_ssize_t i = PREFIX_LEN, last_pair = -1;
    for (;;) {
        if (i >= n) return 0;
        char c = p[i];
        if (c == '"') break;
        if (c == '\n') return 0;
        if (c == '\\') {
            if (i + 1 >= n || p[i + 1] == '\n') return 0;
            last_pair = i;
            i += 2;
        } else {
            i++;
        }
    }
    /* The text ends with an escaped newline, right before the quote. */
    if (last_pair != i - 2 || p[i - 1] != 'n') return 0;
    Py_ssize_t text_end = i - 2;
    i++;
    if (n - i < STREAM_KEY_LEN + 7 || memcmp(p + i, STREAM_KEY, STREAM_KEY_LEN) != 0) return 0;
    i += STREAM_KEY_LEN;
    int stream;
    if (memcmp(p + i, "stdout\"", 7) == 0) {
        stream = 0;
    } else if (memcmp(p + i, "stderr\"", 7) == 0) {
        stream = 1;
    } else {
        return 0;
    }
    i += 7;
    /* The time, read from the end: ...,"time":"YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z"} */
    Py_ssize_t e = n;
    if (e - i < TIME_KEY_LEN + SECOND_LEN + 3 || memcmp(p + e - 3, "Z\"}", 3) != 0) return 0;
    e -= 3;
    Py_ssize_t k = 0;
    while (k < 10 && e - k - 1 >= i && p[e - k - 1] >= '0' && p[e - k - 1] <= '9') k++;
    int frac_len = 0;
    if (k >= 1 && k <= 9 && e - k - 1 >= i && p[e - k - 1] == '.') {
        frac_len = (int)k;
        e -= k + 1;
    }
    if (e - i < TIME_KEY_LEN + SECOND_LEN) return 0;
    Py_ssize_t time_start = e - SECOND_LEN;
    int64_t seconds;
    if (!second_of(p + time_start, &seconds)) return 0;
    Py_ssize_t key_start = time_start - TIME_KEY_LEN;
    if (memcmp(p + key_start, TIME_KEY, TIME_KEY_LEN) != 0) return 0;
    /* Between the stream and the time: nothing, or attrs (skipped). */
    if (key_start != i) {
        if (key_start - i < ATTRS_KEY_LEN + 1 || memcmp(p + i, ATTRS_KEY, ATTRS_KEY_LEN) != 0 ||
            p[key_start - 1] != '}')
            return 0;
        if (memchr(p + i, '\n', (size_t)(key_start - i)) != NULL) return 0;
    }
    int ms = 0;
    for (int j = 0; j < 3; j++) {
        ms = ms * 10 + (j < frac_len ? p[time_start + SECOND_LEN + 1 + j] - '0' : 0);
    }
    put_i32(mark, (int32_t)text_end);
    put_i32(mark + 4, (int32_t)time_start);
    mark[8] = (unsigned char)stream;
    mark[9] = (unsigned char)frac_len;
    mark[10] = mark[11] = 0;
    put_i64(mark + 12, seconds * 1000 + ms);
    *text_len = text_end - PREFIX_LEN;
    return 1;
}

static PyObject *scan_plain(PyObject *self, PyObject *batch) {
    (void)self;
    if (!PyList_Check(batch)) {
        PyErr_SetString(PyExc_TypeError, "scan_plain: batch must be a list of bytes");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(batch);
    if (count == 0) Py_RETURN_NONE;
    PyObject *marks = PyBytes_FromStringAndSize(NULL, count * MARK_SIZE);
    if (marks == NULL) return NULL;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(marks);
    Py_ssize_t longest = 0;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *item = PyList_GET_ITEM(batch, r);
        if (!PyBytes_Check(item)) {
            Py_DECREF(marks);
            PyErr_SetString(PyExc_TypeError, "scan_plain: batch must be a list of bytes");
            return NULL;
        }
        Py_ssize_t text_len = 0;
        if (!scan_one(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item), r == count - 1,
                      out + r * MARK_SIZE, &text_len)) {
            Py_DECREF(marks);
            Py_RETURN_NONE;
        }
        if (text_len > longest) longest = text_len;
    }
    return Py_BuildValue("(Nn)", marks, longest);
}

static int bytes_pair(PyObject *pair, const char *name, PyObject **a, PyObject **b) {
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PyBytes_Check(PyTuple_GET_ITEM(pair, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
        PyErr_Format(PyExc_TypeError, "%s must be a pair of bytes", name);
        return 0;
    }
    *a = PyTuple_GET_ITEM(pair, 0);
    *b = PyTuple_GET_ITEM(pair, 1);
    return 1;
}

static PyObject *plain_values(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *batch, *marks_obj, *heads, *mids, *tail, *headers;
    if (!PyArg_ParseTuple(args, "O!SOOSO:plain_values", &PyList_Type, &batch, &marks_obj,
                          &heads, &mids, &tail, &headers))
        return NULL;
    PyObject *head[2], *mid[2];
    if (!bytes_pair(heads, "heads", &head[0], &head[1]) || !bytes_pair(mids, "mids", &mid[0], &mid[1]))
        return NULL;
    if (!PyTuple_Check(headers) || PyTuple_GET_SIZE(headers) != 2) {
        PyErr_SetString(PyExc_TypeError, "plain_values: headers must be a pair");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(batch);
    if (PyBytes_GET_SIZE(marks_obj) != count * MARK_SIZE) {
        PyErr_SetString(PyExc_ValueError, "plain_values: marks do not match the batch");
        return NULL;
    }
    const unsigned char *marks = (const unsigned char *)PyBytes_AS_STRING(marks_obj);
    const char *tail_p = PyBytes_AS_STRING(tail);
    Py_ssize_t tail_n = PyBytes_GET_SIZE(tail);
    PyObject *out = PyList_New(count);
    if (out == NULL) return NULL;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *item = PyList_GET_ITEM(batch, r);
        const unsigned char *m = marks + r * MARK_SIZE;
        Py_ssize_t text_end = get_i32(m), time_start = get_i32(m + 4);
        int stream = m[8], frac_len = m[9];
        if (!PyBytes_Check(item) || stream > 1 || frac_len > 9 || text_end < PREFIX_LEN ||
            time_start < text_end || time_start + SECOND_LEN + (frac_len ? 1 + frac_len : 0) > PyBytes_GET_SIZE(item)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_ValueError, "plain_values: marks do not match the batch");
            return NULL;
        }
        const char *p = PyBytes_AS_STRING(item);
        Py_ssize_t text_n = text_end - PREFIX_LEN;
        Py_ssize_t hn = PyBytes_GET_SIZE(head[stream]), mn = PyBytes_GET_SIZE(mid[stream]);
        Py_ssize_t size = hn + text_n + mn + SECOND_LEN + 11 + tail_n;
        PyObject *value = PyBytes_FromStringAndSize(NULL, size);
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        char *v = PyBytes_AS_STRING(value);
        memcpy(v, PyBytes_AS_STRING(head[stream]), (size_t)hn);
        v += hn;
        memcpy(v, p + PREFIX_LEN, (size_t)text_n);
        v += text_n;
        memcpy(v, PyBytes_AS_STRING(mid[stream]), (size_t)mn);
        v += mn;
        memcpy(v, p + time_start, SECOND_LEN);
        v += SECOND_LEN;
        *v++ = '.';
        if (frac_len) memcpy(v, p + time_start + SECOND_LEN + 1, (size_t)frac_len);
        memset(v + frac_len, '0', (size_t)(9 - frac_len));
        v += 9;
        *v++ = 'Z';
        memcpy(v, tail_p, (size_t)tail_n);
        PyObject *ms = PyLong_FromLongLong(get_i64(m + 12));
        if (ms == NULL) {
            Py_DECREF(value);
            Py_DECREF(out);
            return NULL;
        }
        PyObject *h = PyTuple_GET_ITEM(headers, stream);
        Py_INCREF(h);
        PyObject *rec = PyTuple_New(3);
        if (rec == NULL) {
            Py_DECREF(value);
            Py_DECREF(ms);
            Py_DECREF(h);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(rec, 0, value);
        PyTuple_SET_ITEM(rec, 1, h);
        PyTuple_SET_ITEM(rec, 2, ms);
        PyList_SET_ITEM(out, r, rec);
    }
    return out;
}


/* Unsigned LEB128 varints (protobuf's; Kafka's are zigzag on top, below). */
static char *put_uvarint(char *o, uint64_t v) {
    while (v >= 0x80) {
        *o++ = (char)(v | 0x80);
        v >>= 7;
    }
    *o++ = (char)v;
    return o;
}

static Py_ssize_t uvarint_len(uint64_t v) {
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* -- Kafka record batches (v2): the records of a batch, appended in one call ---- */

/* Kafka's varints are zigzag: a signed value folded onto the unsigned ones. */
static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

static Py_ssize_t varint_size(int64_t v) { return uvarint_len(zigzag(v)); }

static char *put_varint(char *p, int64_t v) { return put_uvarint(p, zigzag(v)); }

/* Sizes of one record's parts; 0 and an exception if it is not an OutRecord. */
static int record_parts(PyObject *rec, PyObject **value, PyObject **headers, int64_t *ts) {
    if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) != 3) {
        PyErr_SetString(PyExc_TypeError, "encode_records: a record is (value, headers, timestamp)");
        return 0;
    }
    *value = PyTuple_GET_ITEM(rec, 0);
    *headers = PyTuple_GET_ITEM(rec, 1);
    if (!PyBytes_Check(*value) || !PyList_Check(*headers)) {
        PyErr_SetString(PyExc_TypeError, "encode_records: value must be bytes, headers a list");
        return 0;
    }
    *ts = PyLong_AsLongLong(PyTuple_GET_ITEM(rec, 2));
    if (*ts == -1 && PyErr_Occurred()) return 0;
    return 1;
}

static int header_parts(PyObject *h, const char **k, Py_ssize_t *kn, const char **v, Py_ssize_t *vn) {
    if (!PyTuple_Check(h) || PyTuple_GET_SIZE(h) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(h, 0))) {
        PyErr_SetString(PyExc_TypeError, "encode_records: a header is (str, bytes or None)");
        return 0;
    }
    *k = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(h, 0), kn);
    if (*k == NULL) return 0;
    PyObject *hv = PyTuple_GET_ITEM(h, 1);
    if (hv == Py_None) {
        *v = NULL;
        *vn = -1;
    } else if (PyBytes_Check(hv)) {
        *v = PyBytes_AS_STRING(hv);
        *vn = PyBytes_GET_SIZE(hv);
    } else {
        PyErr_SetString(PyExc_TypeError, "encode_records: a header value is bytes or None");
        return 0;
    }
    return 1;
}

/*
 * Make buf at least `need` bytes long, doubling what it holds: growing it by
 * exactly what each record takes let CPython's bytearray grow its allocation
 * by an eighth at a time, a realloc every few records of a megabyte batch
 * (454 ns a record of 466 bytes, 93 ns in a 256 KiB batch).
 */
static int grow_to(PyObject *buf, Py_ssize_t need) {
    Py_ssize_t size = PyByteArray_GET_SIZE(buf);
    if (need <= size) return 1;
    Py_ssize_t want = size * 2 > need ? size * 2 : need;
    return PyByteArray_Resize(buf, want) == 0;
}

/*
 * encode_records(buf, records, start, key, first_ts, offset, batch_size, alone)
 *     -> (end, max_ts, stop)
 *
 * Appends records[start:end] to buf (a bytearray holding a batch being built)
 * in the v2 record layout, with offset deltas from `offset` on and timestamp
 * deltas from first_ts. It stops before a record that would take buf to
 * batch_size or past it (aiokafka's compiled builder's rule), unless the
 * batch is empty (offset 0: the first record always goes in), and a record whose value is `alone` bytes or more only goes into
 * an empty batch and nothing after it. stop is True when the batch must be
 * closed (a record did not fit, or it holds such a record).
 */
static PyObject *encode_records(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *buf, *records, *key;
    Py_ssize_t start, batch_size, alone;
    long long first_ts, offset;
    if (!PyArg_ParseTuple(args, "O!O!nOLLnn:encode_records", &PyByteArray_Type, &buf, &PyList_Type,
                          &records, &start, &key, &first_ts, &offset, &batch_size, &alone))
        return NULL;
    const char *key_p = NULL;
    Py_ssize_t key_n = -1;
    if (key != Py_None) {
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "encode_records: key must be bytes or None");
            return NULL;
        }
        key_p = PyBytes_AS_STRING(key);
        key_n = PyBytes_GET_SIZE(key);
    }
    Py_ssize_t count = PyList_GET_SIZE(records);
    if (start < 0 || start > count) {
        PyErr_SetString(PyExc_IndexError, "encode_records: start out of range");
        return NULL;
    }
    int64_t max_ts = INT64_MIN;
    int stop = 0;
    /* Bytes of buf in use; buf itself grows ahead of it (see grow_to) and is cut
     * back to it on the way out, error or not. */
    Py_ssize_t used = PyByteArray_GET_SIZE(buf);
    int failed = 0;
    Py_ssize_t r = start;
    for (; r < count; r++) {
        PyObject *value, *headers;
        int64_t ts;
        if (!record_parts(PyList_GET_ITEM(records, r), &value, &headers, &ts)) {
            failed = 1;
            break;
        }
        Py_ssize_t value_n = PyBytes_GET_SIZE(value);
        if (offset > 0 && value_n >= alone) {
            stop = 1;
            break;
        }
        Py_ssize_t nh = PyList_GET_SIZE(headers);
        Py_ssize_t body = 1 + varint_size(ts - first_ts) + varint_size(offset) + varint_size(key_n) +
                          (key_n > 0 ? key_n : 0) + varint_size(value_n) + value_n + varint_size(nh);
        for (Py_ssize_t j = 0; j < nh; j++) {
            const char *k, *v;
            Py_ssize_t kn, vn;
            if (!header_parts(PyList_GET_ITEM(headers, j), &k, &kn, &v, &vn)) {
                failed = 1;
                break;
            }
            body += varint_size(kn) + kn + varint_size(vn) + (vn > 0 ? vn : 0);
        }
        if (failed) break;
        Py_ssize_t required = body + varint_size(body);
        if (offset > 0 && required + used >= batch_size) {
            stop = 1;
            break;
        }
        if (!grow_to(buf, used + required)) {
            failed = 1;
            break;
        }
        char *p = PyByteArray_AS_STRING(buf) + used;
        p = put_varint(p, body);
        *p++ = 0; /* attributes */
        p = put_varint(p, ts - first_ts);
        p = put_varint(p, offset);
        p = put_varint(p, key_n);
        if (key_n > 0) {
            memcpy(p, key_p, (size_t)key_n);
            p += key_n;
        }
        p = put_varint(p, value_n);
        memcpy(p, PyBytes_AS_STRING(value), (size_t)value_n);
        p += value_n;
        p = put_varint(p, nh);
        for (Py_ssize_t j = 0; j < nh; j++) {
            const char *k, *v;
            Py_ssize_t kn, vn;
            header_parts(PyList_GET_ITEM(headers, j), &k, &kn, &v, &vn); /* checked above */
            p = put_varint(p, kn);
            memcpy(p, k, (size_t)kn);
            p += kn;
            p = put_varint(p, vn);
            if (vn > 0) {
                memcpy(p, v, (size_t)vn);
                p += vn;
            }
        }
        used += required;
        if (ts > max_ts) max_ts = ts;
        offset++;
        if (value_n >= alone) {
            r++;
            stop = 1;
            break;
        }
    }
    if (PyByteArray_GET_SIZE(buf) != used) {
        /* Keeps the allocation (a cut to half or more of it is only a new size). */
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        int cut = PyByteArray_Resize(buf, used);
        if (type != NULL) {
            PyErr_Restore(type, value, traceback);
            return NULL;
        }
        if (cut < 0) return NULL;
    }
    if (failed) return NULL;
    return Py_BuildValue("(nLO)", r, (long long)max_ts, stop ? Py_True : Py_False);
}

/* -- plain_frames ------------------------------------------------------------ */

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Length of the strict UTF-8 sequence at p (at most n bytes), 0 if invalid
 * (overlong, a surrogate, above U+10FFFF, cut short). */
static Py_ssize_t utf8_len(const unsigned char *p, Py_ssize_t n) {
    unsigned char c = p[0];
    Py_ssize_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return 0;
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (Py_ssize_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

/* Unescape a JSON string's text (no quotes) into o; the end, or NULL when
 * Python's json.loads followed by str.encode() would refuse it. */
static char *unescape(const char *p, Py_ssize_t n, char *o) {
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\') {
            if (i + 1 >= n) return NULL;
            char e = p[i + 1];
            i += 2;
            switch (e) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (i + 4 > n || !hex4(p + i, &cp)) return NULL;
                i += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL;  /* lone low surrogate */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (i + 6 > n || p[i] != '\\' || p[i + 1] != 'u' || !hex4(p + i + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return NULL;  /* lone high surrogate */
                    i += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                o = put_utf8(o, cp);
                break;
            }
            default:
                return NULL;
            }
        } else if (c < 0x20) {
            return NULL;  /* json.loads refuses raw control characters */
        } else if (c < 0x80) {
            *o++ = (char)c;
            i++;
        } else {
            Py_ssize_t len = utf8_len((const unsigned char *)p + i, n - i);
            if (len == 0) return NULL;
            memcpy(o, p + i, (size_t)len);
            o += len;
            i += len;
        }
    }
    return o;
}

static PyObject *plain_frames(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *batch, *marks_obj;
    if (!PyArg_ParseTuple(args, "O!S:plain_frames", &PyList_Type, &batch, &marks_obj)) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(batch);
    if (PyBytes_GET_SIZE(marks_obj) != count * MARK_SIZE) {
        PyErr_SetString(PyExc_ValueError, "plain_frames: marks do not match the batch");
        return NULL;
    }
    const unsigned char *marks = (const unsigned char *)PyBytes_AS_STRING(marks_obj);
    /* A frame is at most its text plus 35 bytes: length 4, source 8, time 11,
     * line tag and length 1 + 10, the newline 1; unescaping never grows a text. */
    Py_ssize_t cap = 0;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *item = PyList_GET_ITEM(batch, r);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "plain_frames: batch must be a list of bytes");
            return NULL;
        }
        cap += PyBytes_GET_SIZE(item) + 35;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, cap);
    if (out == NULL) return NULL;
    char *o = PyBytes_AS_STRING(out);
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *item = PyList_GET_ITEM(batch, r);
        const unsigned char *m = marks + r * MARK_SIZE;
        Py_ssize_t text_end = get_i32(m), time_start = get_i32(m + 4);
        int stream = m[8], frac_len = m[9];
        const char *p = PyBytes_AS_STRING(item);
        int64_t seconds;
        if (stream > 1 || frac_len > 9 || text_end < PREFIX_LEN || time_start < text_end ||
            time_start + SECOND_LEN + (frac_len ? 1 + frac_len : 0) > PyBytes_GET_SIZE(item) ||
            !second_of(p + time_start, &seconds)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_ValueError, "plain_frames: marks do not match the batch");
            return NULL;
        }
        int nanos = 0;
        for (int j = 0; j < 9; j++) {
            char d = j < frac_len ? p[time_start + SECOND_LEN + 1 + j] : '0';
            if (d < '0' || d > '9') {
                Py_DECREF(out);
                PyErr_SetString(PyExc_ValueError, "plain_frames: marks do not match the batch");
                return NULL;
            }
            nanos = nanos * 10 + (d - '0');
        }
        int64_t time_ns;
        if (__builtin_mul_overflow(seconds, (int64_t)1000000000, &time_ns) ||
            __builtin_add_overflow(time_ns, (int64_t)nanos, &time_ns)) {
            Py_DECREF(out);
            Py_RETURN_NONE;  /* not an int64 of ns: a LogEntry cannot carry it */
        }
        /* The line first, where it will end up if its length takes one byte;
         * moved once its length is known otherwise. */
        char *frame = o;
        Py_ssize_t head = 4 + 8 + (time_ns != 0 ? 1 + uvarint_len((uint64_t)time_ns) : 0) + 1;
        char *line = frame + head + 1;
        char *end = unescape(p + PREFIX_LEN, text_end - PREFIX_LEN, line);
        if (end == NULL) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        *end++ = '\n';
        Py_ssize_t line_n = end - line;
        Py_ssize_t ln = uvarint_len((uint64_t)line_n);
        if (ln > 1) {
            memmove(line + ln - 1, line, (size_t)line_n);
        }
        Py_ssize_t body_n = head - 4 + ln + line_n;
        char *q = frame;
        *q++ = (char)((body_n >> 24) & 0xff);
        *q++ = (char)((body_n >> 16) & 0xff);
        *q++ = (char)((body_n >> 8) & 0xff);
        *q++ = (char)(body_n & 0xff);
        *q++ = 0x0a;
        *q++ = 6;
        memcpy(q, stream ? "stderr" : "stdout", 6);
        q += 6;
        if (time_ns != 0) {
            *q++ = 0x10;
            q = put_uvarint(q, (uint64_t)time_ns);
        }
        *q++ = 0x1a;
        q = put_uvarint(q, (uint64_t)line_n);
        o = q + line_n;
    }
    if (_PyBytes_Resize(&out, o - PyBytes_AS_STRING(out)) < 0) return NULL;
    return out;
}

/* -- encode_lines -------------------------------------------------------------- */

static const char HEX[] = "0123456789abcdef";

/* What a byte of a line becomes: 0 itself, 1 a two-byte escape, 2 \u00XX,
 * 3 the start (or not) of a UTF-8 sequence. Filled once (init_tables). */
static unsigned char BYTE_CLASS[256];

/* "000" to "999", three bytes each (init_tables). */
static char DIGITS3[3000];

static void init_tables(void) {
    for (int v = 0; v < 1000; v++) {
        DIGITS3[3 * v] = (char)('0' + v / 100);
        DIGITS3[3 * v + 1] = (char)('0' + v / 10 % 10);
        DIGITS3[3 * v + 2] = (char)('0' + v % 10);
    }
    for (int c = 0; c < 256; c++) {
        BYTE_CLASS[c] = c >= 0x80 ? 3 : c < 0x20 ? 2 : 0;
    }
    BYTE_CLASS['"'] = BYTE_CLASS['\\'] = 1;
    BYTE_CLASS['\n'] = BYTE_CLASS['\r'] = BYTE_CLASS['\t'] = BYTE_CLASS['\b'] = BYTE_CLASS['\f'] = 1;
}

/* A line escaped as json.dumps(ensure_ascii=False) escapes its text, the text
 * decoded with U+FFFD for each byte that is not UTF-8. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether any of eight bytes is a zero byte. */
static inline uint64_t has_zero8(uint64_t v) { return (v - ONES) & ~v & HIGHS; }

/* Whether any of eight bytes is below 0x20, a '"', a '\\' or 0x80 and above:
 * may be one BYTE_CLASS does not copy as it is. */
static inline int needs_escape8(uint64_t w) {
    return ((w & HIGHS) | ((w - ONES * 0x20) & ~w & HIGHS) | has_zero8(w ^ (ONES * '"')) |
            has_zero8(w ^ (ONES * '\\'))) != 0;
}

/* The bytes put_escaped writes for p[0..n): sized exactly, so that a read's
 * records never take more memory than they fill. */
static Py_ssize_t escaped_len(const unsigned char *p, Py_ssize_t n) {
    Py_ssize_t out = 0, i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (!needs_escape8(w)) {
                out += 8;
                i += 8;
                continue;
            }
        }
        switch (BYTE_CLASS[p[i]]) {
        case 0: out++; i++; break;
        case 1: out += 2; i++; break;
        case 2: out += 6; i++; break;
        default: {
            Py_ssize_t len = utf8_len(p + i, n - i);
            if (len == 0) {
                out += 3; /* U+FFFD */
                i++;
            } else {
                out += len;
                i += len;
            }
        }
        }
    }
    return out;
}

static char *put_escaped(char *o, const unsigned char *p, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n) {
        Py_ssize_t run = i;
        /* Eight bytes at a time while none of them needs escaping. */
        while (n - run >= 8) {
            uint64_t w;
            memcpy(&w, p + run, 8);
            if (needs_escape8(w)) break;
            run += 8;
        }
        while (run < n && BYTE_CLASS[p[run]] == 0) run++;
        if (run > i) {
            memcpy(o, p + i, (size_t)(run - i));
            o += run - i;
            i = run;
            if (i >= n) break;
        }
        unsigned char c = p[i];
        switch (BYTE_CLASS[c]) {
        case 1:
            *o++ = '\\';
            *o++ = c == '"' ? '"' : c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\r' ? 'r'
                 : c == '\t' ? 't' : c == '\b' ? 'b' : 'f';
            i++;
            break;
        case 2:
            memcpy(o, "\\u00", 4);
            o[4] = HEX[c >> 4];
            o[5] = HEX[c & 0xF];
            o += 6;
            i++;
            break;
        default: {
            Py_ssize_t len = utf8_len(p + i, n - i);
            if (len == 0) {
                memcpy(o, "\xef\xbf\xbd", 3);  /* U+FFFD */
                o += 3;
                i++;
            } else {
                memcpy(o, p + i, (size_t)len);
                o += len;
                i += len;
            }
        }
        }
    }
    return o;
}

/* Two decimal digits of 0 <= v < 100. */
static void put2(char *o, int v) {
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

/* "YYYY-MM-DDTHH:MM:SS" of epoch seconds (an int64 of ns keeps the year in
 * 1677-2262, so four digits). */
static void put_second(char *o, int64_t seconds) {
    int64_t days = seconds / 86400, rem = seconds % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    /* civil_from_days (Howard Hinnant's algorithm) */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    int h = (int)(rem / 3600), mi = (int)(rem / 60 % 60), s = (int)(rem % 60);
    put2(o, (int)(y / 100));
    put2(o + 2, (int)(y % 100));
    o[4] = '-';
    put2(o + 5, (int)m);
    o[7] = '-';
    put2(o + 8, (int)d);
    o[10] = 'T';
    put2(o + 11, h);
    o[13] = ':';
    put2(o + 14, mi);
    o[16] = ':';
    put2(o + 17, s);
}

/* One record: {"log":"<escaped line>" + tail + time + Z"}\n; o advanced. */
static char *put_record(char *o, const unsigned char *line, Py_ssize_t line_n, PyObject *tail, int64_t ns,
                        int64_t *last_second, int *have_second, char *second) {
    int64_t sec = ns / 1000000000LL, frac = ns % 1000000000LL;
    if (frac < 0) {
        frac += 1000000000LL;
        sec--;
    }
    if (!*have_second || sec != *last_second) {
        put_second(second, sec);
        *last_second = sec;
        *have_second = 1;
    }
    memcpy(o, PREFIX, PREFIX_LEN);
    o += PREFIX_LEN;
    o = put_escaped(o, line, line_n);
    memcpy(o, PyBytes_AS_STRING(tail), (size_t)PyBytes_GET_SIZE(tail));
    o += PyBytes_GET_SIZE(tail);
    memcpy(o, second, SECOND_LEN);
    o += SECOND_LEN;
    if (frac != 0) {
        char digits9[9];
        int32_t f = (int32_t)frac, hi = f / 1000000, mid = f / 1000 % 1000;
        memcpy(digits9, DIGITS3 + 3 * hi, 3);
        memcpy(digits9 + 3, DIGITS3 + 3 * mid, 3);
        memcpy(digits9 + 6, DIGITS3 + 3 * (f % 1000), 3);
        int keep = 9;
        while (digits9[keep - 1] == '0') keep--;
        *o++ = '.';
        memcpy(o, digits9, (size_t)keep);
        o += keep;
    }
    memcpy(o, "Z\"}\n", 4);
    return o + 4;
}

/* 0 stdout, 1 stderr, -1 neither. */
static int source_of(PyObject *sources, Py_ssize_t i) {
    PyObject *src = PyUnicode_Check(sources) ? sources : PyList_GET_ITEM(sources, i);
    if (!PyUnicode_Check(src)) return -1;
    if (PyUnicode_CompareWithASCIIString(src, "stdout") == 0) return 0;
    if (PyUnicode_CompareWithASCIIString(src, "stderr") == 0) return 1;
    return -1;
}

static PyObject *encode_lines(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *lines, *times, *sources, *tails;
    if (!PyArg_ParseTuple(args, "O!O!OO:encode_lines", &PyList_Type, &lines, &PyList_Type, &times,
                          &sources, &tails))
        return NULL;
    PyObject *tail[2];
    if (!bytes_pair(tails, "tails", &tail[0], &tail[1])) return NULL;
    Py_ssize_t count = PyList_GET_SIZE(lines);
    if (PyList_GET_SIZE(times) != count ||
        !(PyUnicode_Check(sources) || (PyList_Check(sources) && PyList_GET_SIZE(sources) == count))) {
        PyErr_SetString(PyExc_ValueError, "encode_lines: lines, times and sources do not match");
        return NULL;
    }
    /* First pass: check everything, keep each time and stream, size the output. */
    int64_t *ns_of = PyMem_Malloc(sizeof(int64_t) * (size_t)(count ? count : 1));
    unsigned char *src_of = PyMem_Malloc((size_t)(count ? count : 1));
    if (ns_of == NULL || src_of == NULL) {
        PyMem_Free(ns_of);
        PyMem_Free(src_of);
        return PyErr_NoMemory();
    }
    int one_src = PyUnicode_Check(sources) ? source_of(sources, 0) : -2;
    Py_ssize_t size = 0;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyBytes_Check(line)) {
            PyErr_SetString(PyExc_TypeError, "encode_lines: lines must be bytes");
            goto done;
        }
        int src = one_src != -2 ? one_src : source_of(sources, i);
        PyObject *t = PyList_GET_ITEM(times, i);
        int overflow = 0;
        long long v = PyLong_Check(t) ? PyLong_AsLongLongAndOverflow(t, &overflow) : 0;
        if (src < 0 || !PyLong_Check(t) || overflow) {
            result = Py_None;  /* left to the caller */
            Py_INCREF(result);
            goto done;
        }
        ns_of[i] = (int64_t)v;
        src_of[i] = (unsigned char)src;
        size += PREFIX_LEN + escaped_len((const unsigned char *)PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line)) +
                PyBytes_GET_SIZE(tail[src]) + SECOND_LEN + 10 + 4;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) goto done;
    char *o = PyBytes_AS_STRING(out);
    int64_t last_second = 0;
    int have_second = 0;
    char second[SECOND_LEN];
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        o = put_record(o, (const unsigned char *)PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), tail[src_of[i]],
                       ns_of[i], &last_second, &have_second, second);
    }
    if (_PyBytes_Resize(&out, o - PyBytes_AS_STRING(out)) == 0) result = out;
done:
    PyMem_Free(ns_of);
    PyMem_Free(src_of);
    return result;
}

/* -- whole_records: ingest's frames straight to records ------------------------ */

/* A frame's length: its first four bytes, big-endian. */
static uint64_t frame_length(const unsigned char *p) {
    return ((uint64_t)p[0] << 24) | ((uint64_t)p[1] << 16) | ((uint64_t)p[2] << 8) | (uint64_t)p[3];
}

/* The varint at p[*i..end); 0 if cut or above 64 bits. */
static int get_varint(const unsigned char *p, Py_ssize_t *i, Py_ssize_t end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*i >= end) return 0;
        unsigned char b = p[(*i)++];
        if (shift == 63 && (b & 0x7F) > 1) return 0;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* One frame's body p[i..end) if it is a whole line: source 0/1, time, line. */
static int whole_line(const unsigned char *p, Py_ssize_t i, Py_ssize_t end, int *src, int64_t *time_ns,
                      Py_ssize_t *line_at, Py_ssize_t *line_n) {
    int seen = 0;
    *src = -1;
    *time_ns = 0;
    *line_at = 0;
    *line_n = 0;
    while (i < end) {
        unsigned char tag = p[i++];
        int bit;
        switch (tag) {
        case 0x0A: bit = 1; break;
        case 0x10: bit = 2; break;
        case 0x1A: bit = 4; break;
        case 0x20: bit = 8; break;
        default: return 0;
        }
        if (seen & bit) return 0;
        seen |= bit;
        uint64_t v;
        if (!get_varint(p, &i, end, &v)) return 0;
        if (tag == 0x10) {
            *time_ns = (int64_t)v;
        } else if (tag == 0x20) {
            if (v != 0) return 0;
        } else {
            if (v > (uint64_t)(end - i)) return 0;
            if (tag == 0x1A) {
                *line_at = i;
                *line_n = (Py_ssize_t)v;
            } else if (v == 6 && memcmp(p + i, "stdout", 6) == 0) {
                *src = 0;
            } else if (v == 6 && memcmp(p + i, "stderr", 6) == 0) {
                *src = 1;
            } else {
                return 0;
            }
            i += (Py_ssize_t)v;
        }
    }
    return *src >= 0;
}

static PyObject *whole_records(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t max_frame;
    int final;
    PyObject *tails;
    if (!PyArg_ParseTuple(args, "y*npO:whole_records", &view, &max_frame, &final, &tails)) return NULL;
    PyObject *tail[2];
    PyObject *result = NULL;
    if (!bytes_pair(tails, "tails", &tail[0], &tail[1])) goto release;
    const unsigned char *p = view.buf;
    Py_ssize_t end = view.len, pos = 0, size = 0, count = 0, line_bytes = 0;
    int src;
    int64_t t;
    Py_ssize_t line_at, line_n;
    /* First pass: the frames, checked, and the most their records can take. */
    while (end - pos >= 4) {
        uint64_t length = frame_length(p + pos);
        if (length > (uint64_t)max_frame) goto refuse;
        if ((Py_ssize_t)length > end - pos - 4) break;
        Py_ssize_t stop = pos + 4 + (Py_ssize_t)length;
        if (!whole_line(p, pos + 4, stop, &src, &t, &line_at, &line_n)) goto refuse;
        size += PREFIX_LEN + escaped_len(p + line_at, line_n) + PyBytes_GET_SIZE(tail[src]) + SECOND_LEN + 10 + 4;
        line_bytes += line_n;
        count++;
        pos = stop;
    }
    if (final && pos < end) goto refuse;
    Py_ssize_t used = pos;
    PyObject *out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL) goto release;
    char *o = PyBytes_AS_STRING(out);
    int64_t last_second = 0;
    int have_second = 0;
    char second[SECOND_LEN];
    for (pos = 0; pos < used;) {
        Py_ssize_t stop = pos + 4 + (Py_ssize_t)frame_length(p + pos);
        (void)whole_line(p, pos + 4, stop, &src, &t, &line_at, &line_n);
        o = put_record(o, p + line_at, line_n, tail[src], t, &last_second, &have_second, second);
        pos = stop;
    }
    if (_PyBytes_Resize(&out, o - PyBytes_AS_STRING(out)) < 0) goto release;
    result = Py_BuildValue("(Nnnn)", out, count, line_bytes, used);
    goto release;
refuse:
    result = Py_None;
    Py_INCREF(result);
release:
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_plain", scan_plain, METH_O, "Marks of a batch of plain whole lines, or None."},
    {"plain_values", plain_values, METH_VARARGS, "The Kafka records of scanned plain lines."},
    {"encode_records", encode_records, METH_VARARGS, "Append records to a v2 record batch."},
    {"whole_records", whole_records, METH_VARARGS, "Ingest's records of whole-line frames, or None."},
    {"encode_lines", encode_lines, METH_VARARGS, "Ingest's records of whole lines, or None."},
    {"plain_frames", plain_frames, METH_VARARGS, "The ReadLogs frames of scanned plain lines, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pylog._speedups",
    "Compiled twins of pylog.speedups' reference functions.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    init_tables();
    return PyModule_Create(&module);
}
