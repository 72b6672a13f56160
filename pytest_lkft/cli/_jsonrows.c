/* The rows `lkft parse` prints, in C: the one loop that runs once per result.
 *
 * `rows(cases, prefix, middle, suffix, quote)` returns, for each case of the list, in
 * order: prefix, the case's id (`suite/name`) as a JSON string, middle, its result,
 * suffix; all of it in one str. An id of printable ASCII without `"` or `\` is copied
 * as it is; any other goes through `quote` (json's encode_basestring_ascii), so the text
 * is what the Python writers of cli/parse.py give (the tests compare the two). It exists
 * because the Python loop costs about as much as parsing the log (issue 17: `lkft parse`
 * must reach 20x the kernel's kunit_parser end to end, 562,760 results in 100 MB).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *SUITE, *NAME, *RESULT;

typedef struct {
    char *data;
    Py_ssize_t size, used;
} Buffer;

static int
put(Buffer *b, const char *text, Py_ssize_t length)
{
    if (b->used + length > b->size) {
        Py_ssize_t size = (b->size + length) * 2;
        char *grown = PyMem_Realloc(b->data, size);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = grown;
        b->size = size;
    }
    memcpy(b->data + b->used, text, length);
    b->used += length;
    return 0;
}

/* The UTF-8 of an ASCII str, or NULL when it is not one (no error set). */
static const char *
ascii(PyObject *text, Py_ssize_t *length)
{
    if (!PyUnicode_Check(text) || !PyUnicode_IS_ASCII(text))
        return NULL;
    *length = PyUnicode_GET_LENGTH(text);
    return (const char *)PyUnicode_DATA(text);
}

/* True when `text` may stand in a JSON string as it is. */
static int
plain(const char *text, Py_ssize_t length)
{
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return 0;
    }
    return 1;
}

/* Put the JSON string of `suite/name`. */
static int
put_id(Buffer *b, PyObject *suite, PyObject *name, PyObject *quote)
{
    Py_ssize_t suite_len, name_len;
    const char *suite_text = ascii(suite, &suite_len), *name_text = ascii(name, &name_len);
    if (suite_text != NULL && name_text != NULL && plain(suite_text, suite_len)
        && plain(name_text, name_len)) {
        return put(b, "\"", 1) || put(b, suite_text, suite_len) || put(b, "/", 1)
               || put(b, name_text, name_len) || put(b, "\"", 1);
    }
    PyObject *id = PyUnicode_FromFormat("%S/%S", suite, name);
    if (id == NULL)
        return -1;
    PyObject *quoted = PyObject_CallOneArg(quote, id);
    Py_DECREF(id);
    if (quoted == NULL)
        return -1;
    Py_ssize_t length;
    const char *text = PyUnicode_Check(quoted) ? PyUnicode_AsUTF8AndSize(quoted, &length) : NULL;
    int failed = text == NULL || put(b, text, length);
    if (text == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "quote() must return a str");
    Py_DECREF(quoted);
    return failed ? -1 : 0;
}

/* One row: prefix, id, middle, result, suffix. */
static int
put_row(Buffer *b, PyObject *c, const char *const parts[3], const Py_ssize_t lengths[3],
        PyObject *quote)
{
    PyObject *suite = PyObject_GetAttr(c, SUITE);
    PyObject *name = suite ? PyObject_GetAttr(c, NAME) : NULL;
    PyObject *result = name ? PyObject_GetAttr(c, RESULT) : NULL;
    int failed = result == NULL;
    if (!failed) {
        Py_ssize_t length;
        const char *text = PyUnicode_Check(result) ? PyUnicode_AsUTF8AndSize(result, &length)
                                                    : NULL;
        if (text == NULL && !PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "a case's result must be a str");
        failed = text == NULL || put(b, parts[0], lengths[0]) || put_id(b, suite, name, quote)
                 || put(b, parts[1], lengths[1]) || put(b, text, length)
                 || put(b, parts[2], lengths[2]);
    }
    Py_XDECREF(suite);
    Py_XDECREF(name);
    Py_XDECREF(result);
    return failed ? -1 : 0;
}

PyDoc_STRVAR(rows_doc,
"rows(cases, prefix, middle, suffix, quote) -> str\n\n"
"For each case: prefix, its id as a JSON string, middle, its result, suffix.");

static PyObject *
rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "rows(cases: list, prefix, middle, suffix, quote)");
        return NULL;
    }
    const char *parts[3];
    Py_ssize_t lengths[3];
    for (int i = 0; i < 3; i++) {
        if (!PyUnicode_Check(args[i + 1])
            || (parts[i] = PyUnicode_AsUTF8AndSize(args[i + 1], &lengths[i])) == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "prefix, middle and suffix must be str");
            return NULL;
        }
    }
    Buffer b = {NULL, 0, 0};
    PyObject *cases = args[0];
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cases); i++) {
        if (put_row(&b, PyList_GET_ITEM(cases, i), parts, lengths, args[4]) < 0) {
            PyMem_Free(b.data);
            return NULL;
        }
    }
    PyObject *text = PyUnicode_DecodeUTF8(b.data, b.used, "strict");
    PyMem_Free(b.data);
    return text;
}

static PyMethodDef methods[] = {
    {"rows", (PyCFunction)(void (*)(void))rows, METH_FASTCALL, rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jsonrows", "lkft parse's result rows (see cli/parse.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__jsonrows(void)
{
    if ((SUITE = PyUnicode_InternFromString("suite")) == NULL
        || (NAME = PyUnicode_InternFromString("name")) == NULL
        || (RESULT = PyUnicode_InternFromString("result")) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
