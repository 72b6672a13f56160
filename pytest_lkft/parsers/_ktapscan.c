/* The KTAP line scanner behind pytest_lkft.parsers.ktap, in C.
 *
 * `scan` reads a buffer of UTF-8 console lines (each ending in '\n') and does what
 * `KtapParser.feed` does for the lines a KUnit run is made of: diagnostics and kernel
 * messages go to the open block's log, `# Subtest:` headers open blocks, plans set
 * them, plain `ok`/`not ok` leaves become `Case`s, a complete suite's result line closes
 * it. It stops at the first line it is not sure of and leaves that line to `feed`,
 * which stays the one definition of the format: a byte that is not printable ASCII or
 * a tab (but for the carriage returns of a CRLF ending), a version line, a directive
 * or `[` on a result it would report, a line that may hold a crash marker or a glued
 * result, a header or result in an unusual state.
 *
 * The parser's stack is taken from the Python `Block`s at entry and handed back as
 * tuples at return, so that `feed` and `scan` can take turns line by line. Line
 * prefixes are stripped as `lines.strip_prefix` does. The Python fast path
 * (`ChunkReader.read_fast`) does the same with regexes where this module is not built;
 * the tests run both against `feed`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_LEVELS 64
#define MAX_COUNT 999999999999999999LL /* parse_int's cap: 18 nines */

typedef struct {
    PyObject *block;  /* the Python Block it came from, NULL for one opened here */
    PyObject *name;   /* str or None */
    PyObject *prefix; /* str or None: the dotted path of its leaves */
    const char *name_utf8; /* NULL when name is None or has no UTF-8 form */
    Py_ssize_t name_len;
    long long indent;
    long long expected; /* -1: no plan yet */
    long long seen;
    int buffered; /* holds cases of an unnamed block: only `feed` closes it */
    PyObject *log; /* list of str: the lines waiting for the next case */
} Level;

typedef struct {
    Level levels[MAX_LEVELS];
    int depth;
    Py_ssize_t log_lines;
    int max_nesting;
    PyObject *case_type, *suite, *pass, *fail, *empty, *out;
} State;

/* bytes of a "simple" line: printable ASCII and tab */
static unsigned char SIMPLE[256];
static PyObject *EMPTY; /* a case's reason */

static void
drop(Level *l)
{
    Py_XDECREF(l->block);
    Py_XDECREF(l->name);
    Py_XDECREF(l->prefix);
    Py_XDECREF(l->log);
}

static void
release(State *s)
{
    for (int i = 0; i < s->depth; i++)
        drop(&s->levels[i]);
    s->depth = 0;
}

static void
set_name_utf8(Level *l)
{
    l->name_utf8 = NULL;
    l->name_len = 0;
    if (l->name != Py_None) {
        l->name_utf8 = PyUnicode_AsUTF8AndSize(l->name, &l->name_len);
        if (l->name_utf8 == NULL)
            PyErr_Clear(); /* a lone surrogate: leaves of this block go to `feed` */
    }
}

static int
get_count(PyObject *block, const char *attr, long long *value)
{
    PyObject *v = PyObject_GetAttrString(block, attr);
    if (v == NULL)
        return -1;
    if (v == Py_None)
        *value = -1;
    else {
        *value = PyLong_AsLongLong(v);
        if (*value == -1 && PyErr_Occurred()) {
            Py_DECREF(v);
            return -1;
        }
    }
    Py_DECREF(v);
    return 0;
}

/* Take the parser's stack (a list of Block) into `s`. */
static int
import_stack(State *s, PyObject *stack)
{
    Py_ssize_t n = PyList_GET_SIZE(stack);
    if (n > MAX_LEVELS) {
        PyErr_SetString(PyExc_ValueError, "stack deeper than the scanner's limit");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *block = PyList_GET_ITEM(stack, i);
        Level *l = &s->levels[i];
        memset(l, 0, sizeof(*l));
        s->depth = (int)i + 1;
        Py_INCREF(block);
        l->block = block;
        if ((l->name = PyObject_GetAttrString(block, "name")) == NULL)
            return -1;
        if ((l->prefix = PyObject_GetAttrString(block, "prefix")) == NULL)
            return -1;
        if (get_count(block, "indent", &l->indent) < 0 ||
            get_count(block, "expected", &l->expected) < 0 ||
            get_count(block, "seen", &l->seen) < 0)
            return -1;
        PyObject *log = PyObject_GetAttrString(block, "log");
        if (log == NULL)
            return -1;
        l->log = PySequence_List(log);
        Py_DECREF(log);
        if (l->log == NULL)
            return -1;
        PyObject *buffer = PyObject_GetAttrString(block, "buffer");
        if (buffer == NULL)
            return -1;
        Py_ssize_t held = PyObject_Length(buffer);
        Py_DECREF(buffer);
        if (held < 0)
            return -1;
        l->buffered = held > 0;
        set_name_utf8(l);
    }
    return 0;
}

/* The stack as a list of (block or None, name, indent, prefix, expected, seen, log). */
static PyObject *
export_stack(State *s)
{
    PyObject *levels = PyList_New(s->depth);
    if (levels == NULL)
        return NULL;
    for (int i = 0; i < s->depth; i++) {
        Level *l = &s->levels[i];
        PyObject *expected = l->expected < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(l->expected);
        if (expected == NULL) {
            Py_DECREF(levels);
            return NULL;
        }
        PyObject *item = Py_BuildValue("(OOLOOLO)", l->block ? l->block : Py_None, l->name,
                                       l->indent, l->prefix, expected, l->seen, l->log);
        Py_DECREF(expected);
        if (item == NULL) {
            Py_DECREF(levels);
            return NULL;
        }
        PyList_SET_ITEM(levels, i, item);
    }
    return levels;
}

static PyObject *
ascii_str(const char *start, Py_ssize_t len)
{
    PyObject *text = PyUnicode_New(len, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), start, (size_t)len);
    return text;
}

static int
append_text(PyObject *list, const char *start, const char *end)
{
    PyObject *text = ascii_str(start, end - start);
    if (text == NULL)
        return -1;
    int failed = PyList_Append(list, text);
    Py_DECREF(text);
    return failed;
}

/* A line for the open block's log, which keeps its last `log_lines` lines. */
static int
log_line(State *s, const char *start, const char *end)
{
    Level *top = &s->levels[s->depth - 1];
    if (append_text(top->log, start, end) < 0)
        return -1;
    if (PyList_GET_SIZE(top->log) > s->log_lines)
        return PySequence_DelItem(top->log, 0);
    return 0;
}

static void
pop(State *s)
{
    drop(&s->levels[--s->depth]);
}

static int
complete(const Level *l)
{
    return l->expected >= 0 && l->seen >= l->expected;
}

/* `lines.strip_prefix` on a simple line: `<N>`, `[ s.us]`, `[ T1]`, then one blank */
static const char *
strip_prefix(const char *p, const char *end)
{
    const char *start = p, *q;
    if (p < end && *p == '<') {
        q = p + 1;
        int digits = 0;
        while (q < end && digits < 3 && *q >= '0' && *q <= '9')
            q++, digits++;
        if (digits && q < end && *q == '>')
            p = q + 1;
    }
    if (p < end && *p == '[') {
        q = p + 1;
        while (q < end && *q == ' ')
            q++;
        const char *d = q;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
        if (q > d && q < end && *q == '.') {
            d = ++q;
            while (q < end && *q >= '0' && *q <= '9')
                q++;
            if (q > d && q < end && *q == ']')
                p = q + 1;
        }
    }
    if (p < end && *p == '[') {
        q = p + 1;
        while (q < end && *q == ' ')
            q++;
        if (q < end && (*q == 'T' || *q == 'C')) {
            const char *d = ++q;
            while (q < end && *q >= '0' && *q <= '9')
                q++;
            if (q > d && q < end && *q == ']')
                p = q + 1;
        }
    }
    if (p > start && p < end && *p == ' ')
        p++;
    return p;
}

static int
has(const char *start, const char *end, const char *needle)
{
    return memmem(start, (size_t)(end - start), needle, strlen(needle)) != NULL;
}

/* A line `_on_other` would look at for a crash marker or a glued result. */
static int
maybe_marker(const char *start, const char *end)
{
    return has(start, end, "ok ") || has(start, end, "Bail out!") ||
           has(start, end, "Kernel panic - not syncing") ||
           has(start, end, "List of all partitions:") || has(start, end, "reboot: System halted");
}

static int
is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static const char *
skip_blanks(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *
strip_end(const char *start, const char *end)
{
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

static long long
parse_count(const char *p, const char *end)
{
    long long value = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 18)
            return MAX_COUNT;
        value = value * 10 + (*p - '0');
    }
    return value;
}

enum { DONE, HANDLED, TO_PYTHON, ENDED };

/* A plain leaf `name` of the open block: a Case, as `_on_result` + `_leaf` make it. */
static int
leaf(State *s, int ok, const char *name, const char *name_end, const char *text,
     const char *end, long long number)
{
    Level *top = &s->levels[s->depth - 1];
    top->seen++;
    if (append_text(top->log, text, end) < 0) /* its own line ends its log */
        return -1;
    PyObject *relative = ascii_str(name, name_end - name);
    if (relative == NULL)
        return -1;
    PyObject *full = PyUnicode_Concat(top->prefix, relative);
    Py_DECREF(relative);
    if (full == NULL)
        return -1;
    PyObject *at = PyLong_FromLongLong(number);
    if (at == NULL) {
        Py_DECREF(full);
        return -1;
    }
    PyObject *args[6] = {s->suite, full, ok ? s->pass : s->fail, top->log, s->empty, at};
    PyObject *found = PyObject_Vectorcall(s->case_type, args, 6, NULL);
    Py_DECREF(full);
    Py_DECREF(at);
    if (found == NULL)
        return -1;
    int failed = PyList_Append(s->out, found);
    Py_DECREF(found);
    if (failed)
        return -1;
    Py_SETREF(top->log, PyList_New(0));
    if (top->log == NULL)
        return -1;
    if (s->depth == 1 && complete(top)) {
        pop(s);
        return ENDED;
    }
    return HANDLED;
}

/* An `ok`/`not ok` line (`stripped` starts after the indent). */
static int
result_line(State *s, const char *text, const char *stripped, const char *end, long long number)
{
    Level *top = &s->levels[s->depth - 1];
    int ok = *stripped == 'o';
    const char *p = skip_blanks(stripped + (ok ? 2 : 6), end);
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    p = skip_blanks(p, end);
    if (end - p >= 2 && p[0] == '-' && p[1] == ' ')
        p += 2;
    else if (end - p == 1 && *p == '-')
        p++;
    int plain = memchr(p, '#', (size_t)(end - p)) == NULL && memchr(p, '[', (size_t)(end - p)) == NULL;
    const char *name = skip_blanks(p, end), *name_end = strip_end(name, end);
    if (plain && name < name_end && top->prefix != Py_None &&
        !(top->name_utf8 != NULL && top->name_len == name_end - name &&
          memcmp(top->name_utf8, name, (size_t)(name_end - name)) == 0) &&
        (top->name == Py_None || top->name_utf8 != NULL) &&
        (top->expected >= 0 ? top->seen < top->expected : top->name != Py_None || s->depth == 1))
        return leaf(s, ok, name, name_end, text, end, number);
    if (top->expected > 0 && top->expected <= top->seen && s->depth > 1 && !top->buffered) {
        pop(s); /* a complete suite's own result: its log goes with it */
        s->levels[s->depth - 1].seen++;
        if (s->depth == 1 && complete(&s->levels[0])) {
            pop(s);
            return ENDED;
        }
        return HANDLED;
    }
    return TO_PYTHON;
}

static int
header(State *s, const char *stripped, const char *end, long long indent)
{
    Level *top = &s->levels[s->depth - 1];
    if (complete(top) || s->depth >= s->max_nesting || s->depth >= MAX_LEVELS)
        return TO_PYTHON;
    if (top->name == Py_None && top->seen == 0 && top->expected < 0 && indent <= top->indent)
        return TO_PYTHON; /* it names the block its version line opened */
    const char *name = skip_blanks(stripped + 10, end), *name_end = strip_end(name, end);
    PyObject *title = ascii_str(name, name_end - name);
    if (title == NULL)
        return -1;
    PyObject *prefix;
    if (top->prefix == Py_None)
        prefix = Py_NewRef(Py_None);
    else
        prefix = PyUnicode_FromFormat("%U%U.", top->prefix, title);
    PyObject *log = PyList_New(0);
    if (prefix == NULL || log == NULL) {
        Py_DECREF(title);
        Py_XDECREF(prefix);
        Py_XDECREF(log);
        return -1;
    }
    Level *l = &s->levels[s->depth++];
    memset(l, 0, sizeof(*l));
    l->name = title;
    l->prefix = prefix;
    l->log = log;
    l->indent = indent;
    l->expected = -1;
    set_name_utf8(l);
    return HANDLED;
}

/* One simple line, its prefix gone: what `feed` does, or TO_PYTHON. */
static int
line(State *s, const char *text, const char *end, long long number)
{
    const char *stripped = skip_blanks(text, end);
    long long indent = stripped - text;
    Py_ssize_t left = end - stripped;
    char first = left ? *stripped : '\0';
    if (first == 'o' || first == 'n') {
        int status = first == 'o' ? 2 : (left >= 6 && memcmp(stripped, "not ok", 6) == 0 ? 6 : 0);
        if (status && (first == 'n' || (left >= 2 && stripped[1] == 'k')) &&
            (left == status || !is_word(stripped[status])))
            return result_line(s, text, stripped, end, number);
    }
    else if (first == '#') {
        if (left >= 10 && memcmp(stripped, "# Subtest:", 10) == 0)
            return header(s, stripped, end, indent);
        return log_line(s, text, end) < 0 ? -1 : HANDLED;
    }
    else if (first == '1' && left > 3 && memcmp(stripped, "1..", 3) == 0 && stripped[3] >= '0' &&
             stripped[3] <= '9') {
        Level *top = &s->levels[s->depth - 1];
        if (top->expected < 0) {
            top->expected = parse_count(stripped + 3, end);
            if (s->depth == 1 && complete(top)) {
                pop(s);
                return ENDED;
            }
        }
        return HANDLED;
    }
    else if (first == 'K' || first == 'T') {
        if (has(stripped, end, "TAP version"))
            return TO_PYTHON;
    }
    if (maybe_marker(stripped, end))
        return TO_PYTHON;
    return log_line(s, text, end) < 0 ? -1 : HANDLED;
}

static int
context(State *s, PyObject *ctx)
{
    if (!PyTuple_Check(ctx) || PyTuple_GET_SIZE(ctx) != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "context: (Case, suite, PASS, FAIL, out, log_lines, max_nesting)");
        return -1;
    }
    s->case_type = PyTuple_GET_ITEM(ctx, 0);
    s->suite = PyTuple_GET_ITEM(ctx, 1);
    s->pass = PyTuple_GET_ITEM(ctx, 2);
    s->fail = PyTuple_GET_ITEM(ctx, 3);
    s->out = PyTuple_GET_ITEM(ctx, 4);
    s->empty = EMPTY;
    s->log_lines = PyLong_AsSsize_t(PyTuple_GET_ITEM(ctx, 5));
    s->max_nesting = (int)PyLong_AsLong(PyTuple_GET_ITEM(ctx, 6));
    if (PyErr_Occurred())
        return -1;
    if (!PyList_Check(s->out)) {
        PyErr_SetString(PyExc_TypeError, "context: out must be a list");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(scan_doc,
"scan(data, pos, number, stack, context) -> (pos, number, levels, to_python)\n\n"
"Read the '\\n'-ended lines of `data` from `pos` while the stack is open, as\n"
"KtapParser.feed would. `number` is the number of the line before `pos`; `stack` the\n"
"parser's list of Block; `context` (Case, suite, PASS, FAIL, out, log_lines,\n"
"max_nesting). Returns where it stopped, the number of the last line read, the stack\n"
"as (block or None, name, indent, prefix, expected, seen, log) tuples, and whether the\n"
"line at `pos` is left to `feed`.");

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5 || !PyBytes_Check(args[0]) || !PyList_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "scan(data: bytes, pos, number, stack: list, context)");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long long number = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    if (pos < 0 || pos > size) {
        PyErr_SetString(PyExc_ValueError, "pos outside data");
        return NULL;
    }
    State s;
    s.depth = 0;
    if (context(&s, args[4]) < 0)
        return NULL;
    if (import_stack(&s, args[3]) < 0) {
        release(&s);
        return NULL;
    }
    int outcome = DONE;
    while (s.depth && pos < size) {
        const char *start = data + pos;
        const char *end = memchr(start, '\n', (size_t)(size - pos));
        if (end == NULL) {
            outcome = TO_PYTHON; /* a last line without its newline */
            break;
        }
        const char *next = end + 1;
        while (end > start && end[-1] == '\r')
            end--; /* a CRLF ending: `clean` strips it */
        const char *p = start;
        while (p < end && SIMPLE[(unsigned char)*p])
            p++;
        if (p < end) {
            outcome = TO_PYTHON;
            break;
        }
        const char *text = (*start == '<' || *start == '[') ? strip_prefix(start, end) : start;
        outcome = line(&s, text, end, number + 1);
        if (outcome < 0) {
            release(&s);
            return NULL;
        }
        if (outcome == TO_PYTHON)
            break;
        number++;
        pos = next - data;
        if (outcome == ENDED)
            break;
    }
    PyObject *levels = export_stack(&s);
    release(&s);
    if (levels == NULL)
        return NULL;
    return Py_BuildValue("(nLNO)", pos, number, levels, outcome == TO_PYTHON ? Py_True : Py_False);
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ktapscan", "KTAP line scanner (see ktap.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__ktapscan(void)
{
    for (int c = 0x20; c < 0x7f; c++)
        SIMPLE[c] = 1;
    SIMPLE['\t'] = 1;
    if (EMPTY == NULL && (EMPTY = PyUnicode_FromString("")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
