"""Reading the user's objects without running any of their code, for the kernel-context facts.

Everything the user defines can run code when it is touched: `obj.x` may be a property or reach
`__getattr__`, `repr(obj)` and `len(obj)` call methods, `k in d` hashes and compares keys, even
`isinstance(obj, C)` reads `obj.__class__`. So this module only ever
- takes `type(obj)` (never `obj.__class__`) and reads types through `type`'s own descriptors,
- reads instance dictionaries with `object.__getattribute__(obj, "__dict__")`,
- looks attributes up with `inspect.getattr_static` (no descriptor is called, no `__getattr__`),
- calls methods only of exact builtin types (dict, list, str, ...) and of NumPy arrays and pandas
  frames whose type is exactly the library's own (a subclass could override what we read),
- shows values only when they are short literals of exact builtin types.
Any exception is the caller's to catch: a namespace can change under us while a cell runs.
"""

from __future__ import annotations

import enum
import inspect
import sys
import types
import weakref

from .conversation.limits import is_secret_name, redact

_TYPE_DICT = type.__dict__["__dict__"].__get__  # cls -> its own mappingproxy, whatever its metaclass says
_TYPE_MRO = type.__dict__["__mro__"].__get__
_TYPE_NAME = type.__dict__["__name__"].__get__
_SAFE_METACLASSES = (type, enum.EnumMeta, getattr(__import__("abc"), "ABCMeta"))
# Exact types whose values are literals: shown when short, and safe as dict keys (their hash and
# equality are the interpreter's own).
LITERAL_TYPES = (str, int, float, bool, bytes, type(None))
MAX_LITERAL = 40  # characters of a value's repr, beyond which only its type is shown
MAX_KEYS = 60  # keys, columns or attributes read from one object


def type_name(obj) -> str:
    return _TYPE_NAME(type(obj))


def mro(cls) -> tuple:
    return _TYPE_MRO(cls)


def own_dict(cls) -> types.MappingProxyType:
    return _TYPE_DICT(cls)


def instance_dict(obj) -> dict | None:
    """The instance's own `__dict__`, read without `__getattribute__` overrides; None if it has none."""
    try:
        found = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        return None
    return found if type(found) is dict else None


def short_literal(value) -> str | None:
    """`repr(value)` for an exact builtin literal (or a small tuple of them) that is short, else None."""
    kind = type(value)
    if (kind is int and value.bit_length() > 128) or (kind is bytes and len(value) > MAX_LITERAL):
        return None  # a huge number's repr is slow (and may raise); never short anyway
    if kind in LITERAL_TYPES or (kind is tuple and len(value) <= 4 and all(type(v) in LITERAL_TYPES for v in value)):
        text = repr(value) if kind is not str or len(value) <= MAX_LITERAL else ""
        # Only literals reach the model as values, so they are where credentials are redacted (the
        # conversation commands' patterns: sk-..., ghp_..., JWTs, ...); names are checked by the caller.
        return redact(text) if text and len(text) <= MAX_LITERAL else None
    return None


def library_type(obj, module: str, name: str) -> bool:
    """Is `obj` exactly `module.name` (numpy.ndarray, pandas.DataFrame, ...)? The library is looked up
    in sys.modules only: never imported here, so a user who has not imported pandas pays nothing."""
    lib = sys.modules.get(module)
    return lib is not None and type(obj) is getattr(lib, name, None)


def describe(obj) -> str:
    """A short description: type and, for known types, size/shape/dtype and short literal values."""
    kind = type(obj)
    literal = short_literal(obj)
    if literal is not None:
        return f"{_TYPE_NAME(kind)} = {literal}"
    if kind in (dict, list, tuple, set, frozenset, str, bytes):
        return f"{_TYPE_NAME(kind)} of {kind.__len__(obj)} items" if kind not in (str, bytes) else \
            f"{_TYPE_NAME(kind)} of {kind.__len__(obj)} characters"
    if library_type(obj, "numpy", "ndarray"):
        return f"ndarray shape {tuple(obj.shape)} dtype {obj.dtype.str if obj.dtype.names else obj.dtype.name}"
    if library_type(obj, "pandas", "DataFrame"):
        rows, cols = obj.shape
        return f"DataFrame {rows} rows x {cols} columns"
    if library_type(obj, "pandas", "Series"):
        return f"Series {obj.shape[0]} rows dtype {obj.dtype}"
    if kind is types.ModuleType:
        return "module"
    if issubclass(kind, type):
        return "class"
    if kind in (types.FunctionType, types.BuiltinFunctionType, types.MethodType):
        return "function"
    return f"{_TYPE_NAME(kind)} object"


# --- keys at `name[` -------------------------------------------------------------------------------


def subscript_keys(obj) -> tuple[list, str] | None:
    """(keys, what they are) for a dict with literal keys, a DataFrame's columns (with dtypes (key, dtype)
    pairs), a structured array's fields (pairs too); else None."""
    kind = type(obj)
    if kind is dict or (dict in mro(kind) and own_dict(kind).get("__module__") == "collections"):
        keys = _literal_keys(obj)
        return None if keys is None else (keys, "keys")
    if library_type(obj, "pandas", "DataFrame"):
        columns = list(obj.columns[:MAX_KEYS])
        if not all(type(c) in LITERAL_TYPES for c in columns):
            return None
        dtypes = obj.dtypes.iloc[:MAX_KEYS]
        return [(c, str(d)) for c, d in zip(columns, dtypes)], "columns"
    if library_type(obj, "numpy", "ndarray") and obj.dtype.names:
        return [(n, str(obj.dtype.fields[n][0])) for n in obj.dtype.names[:MAX_KEYS]], "fields"
    return None


def first_item(obj):
    """The first item of an exact list or tuple (rows read with csv.DictReader, say), else None."""
    if type(obj) in (list, tuple) and type(obj).__len__(obj):
        return obj[0]  # list's own C-level indexing
    return None


def literal_item(obj, key):
    """`obj[key]` for a list/tuple and an int, or an exact dict whose keys are all literals (so the lookup
    compares with no user `__eq__`); None otherwise."""
    kind = type(obj)
    if kind in (list, tuple) and type(key) is int:
        size = kind.__len__(obj)
        return obj[key] if -size <= key < size else None
    if kind is dict and dict.__len__(obj) <= MAX_KEYS and _literal_keys(obj) is not None:
        return dict.get(obj, key)
    return None


def _literal_keys(d: dict) -> list | None:
    """A dict's first keys, read with dict's own iterator, if every one read is an exact literal type."""
    keys = []
    for key in dict.keys(d):  # dict's own method: a subclass's keys() or __iter__ is not called
        if type(key) not in LITERAL_TYPES:
            return None
        keys.append(key)
        if len(keys) >= MAX_KEYS:
            break
    return keys


# --- attributes at `name.` ---------------------------------------------------------------------------


def attributes(obj) -> tuple[dict[str, str], bool] | None:
    """(name -> kind, complete?) for the attributes of `obj` read statically; complete is False where the
    object can answer names we cannot see (a `__getattr__`, a module `__getattr__`, a C type's
    instance data). None when nothing is known."""
    kind = type(obj)
    found: dict[str, str] = {}
    if kind is types.ModuleType:
        namespace = instance_dict(obj) or {}
        for name in list(namespace)[:2000]:
            if type(name) is str:
                found[name] = _kind_of(namespace[name], module=True)
        return found, "__getattr__" not in namespace
    if issubclass(kind, type):  # a class: its own and inherited attributes (members of an enum)
        if kind not in _SAFE_METACLASSES:
            return None  # a metaclass may answer attribute lookups itself
        complete = True
        for klass in reversed(mro(obj)[:-1]):  # object's own attributes are dunders nobody completes
            for name, value in list(own_dict(klass).items()):
                if type(name) is str:
                    found[name] = _kind_of(value)
        members = own_dict(obj).get("_member_map_")
        if type(members) is dict:
            found.update({name: "member" for name in members if type(name) is str})
        return found, complete
    class_found, complete = _class_attributes(kind)
    found.update(class_found)
    if library_type(obj, "pandas", "DataFrame"):  # pandas' __getattr__ answers the columns, nothing else
        columns = obj.columns[:2000]
        found.update({c: "column" for c in columns if type(c) is str and c.isidentifier()})
        return found, True
    own = instance_dict(obj)
    if own is not None:
        for name, value in list(own.items())[:2000]:
            if type(name) is str:
                found[name] = describe(value)
    elif own_dict(kind).get("__module__", "builtins") != "builtins" and "__slots__" not in own_dict(kind):
        complete = False  # a C type: its instances' data may not be in any dict we can read
    return found, complete


# class -> (the sizes of its MRO's dicts when read, its attributes, complete?): a DataFrame's class
# walk reads ~500 entries, and classes rarely change; a class whose dicts changed size is read again.
_CLASS_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _class_attributes(kind) -> tuple[dict[str, str], bool]:
    """The attributes an instance of `kind` gets from its classes (not `object`'s), and whether no class
    answers names itself."""
    classes = mro(kind)
    sizes = tuple(len(own_dict(klass)) for klass in classes)
    cacheable = type(kind) in _SAFE_METACLASSES  # their hash is type's own: safe as a dictionary key
    if cacheable:
        cached = _CLASS_CACHE.get(kind)
        if cached is not None and cached[0] == sizes:
            return cached[1], cached[2]
    found: dict[str, str] = {}
    complete = True
    for klass in reversed(classes[:-1]):  # the last is object
        namespace = own_dict(klass)
        if _answers_any_name(namespace):
            complete = False  # names come from code we will not run
        for name, value in list(namespace.items()):
            if type(name) is str:
                found[name] = _kind_of(value)
    if cacheable:
        _CLASS_CACHE[kind] = (sizes, found, complete)
    return found, complete


def _answers_any_name(namespace) -> bool:
    """Does a class (by its own dict) look attributes up with code of its own? Python-level hooks and a
    C extension's own lookup do; a builtin type's (tuple's, say) slot wrapper is the generic one."""
    for hook in ("__getattr__", "__getattribute__"):
        if hook in namespace and (type(namespace[hook]) is not types.WrapperDescriptorType
                                  or namespace.get("__module__", "builtins") != "builtins"):
            return True
    return False


def _kind_of(value, module: bool = False) -> str:
    """What a class or module dict entry is, without calling it (`property`, not the property's value)."""
    kind = type(value)
    if kind in (staticmethod, classmethod):
        return "method"
    if kind in (types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
                types.WrapperDescriptorType, types.MethodType):
        return "function" if module else "method"
    if kind is getattr(sys.modules.get("collections"), "_tuplegetter", None):
        return "field"  # a namedtuple's
    if kind is property or kind is types.GetSetDescriptorType or kind is types.MemberDescriptorType:
        return "property"
    if issubclass(kind, type):
        return "class"
    if kind is types.ModuleType:
        return "module"
    literal = short_literal(value)
    return f"= {literal}" if literal is not None else _TYPE_NAME(kind)


def static_attribute(obj, name: str):
    """`obj.name` if it can be read without running user code: from a module's or instance's dict, or a
    class's (the raw entry: a function, not a bound method). Raises AttributeError otherwise."""
    kind = type(obj)
    if kind is types.ModuleType:
        return (instance_dict(obj) or {})[name]
    if issubclass(kind, type) and kind not in _SAFE_METACLASSES:
        raise AttributeError(name)
    value = inspect.getattr_static(obj, name)
    if type(value) in (staticmethod, classmethod):
        value = value.__func__
    if type(value) in (property, types.GetSetDescriptorType, types.MemberDescriptorType):
        raise AttributeError(name)  # reading it would run its getter
    return value


# --- signatures at `name(` ------------------------------------------------------------------------


def signature(obj) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    """(the call signature as text, its keyword names, the names positional arguments fill) of a function,
    method or class, from
    `inspect.signature` (which reads, never calls); defaults shown only as short literals."""
    kind = type(obj)
    if kind is types.MethodType:
        if type(obj.__func__) is not types.FunctionType:
            return None
    elif issubclass(kind, type):
        if kind not in _SAFE_METACLASSES:
            return None
    elif kind not in (types.FunctionType, types.BuiltinFunctionType):
        return None
    try:
        sig = inspect.signature(obj)
    except (ValueError, TypeError):
        return None
    parts, keywords, positional, star_done = [], [], [], False
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star_done = True
            continue
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
            continue
        if p.kind is p.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        text = p.name
        annotation = _annotation(p.annotation)
        if annotation:
            text += f": {annotation}"
        if p.default is not p.empty:
            literal = short_literal(p.default) if not is_secret_name(p.name) else None
            text += f"={literal if literal is not None else '...'}"
        parts.append(text)
        if p.kind is not p.POSITIONAL_ONLY:
            keywords.append(p.name)
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional.append(p.name)
    return f"({', '.join(parts)})", tuple(keywords), tuple(positional)


def _annotation(annotation) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if type(annotation) is str:
        return annotation if len(annotation) <= MAX_LITERAL else ""
    if issubclass(type(annotation), type) and type(annotation) in _SAFE_METACLASSES:
        return _TYPE_NAME(annotation)
    return ""
