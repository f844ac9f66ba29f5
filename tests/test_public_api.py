"""The public API keeps its promises to a newcomer: documented, typed, and loud about mistakes.

Every public module lists its names in ``__all__``; every public function, class, method
and property among them has a docstring and type hints. The obvious mistakes (a string
where a ``Config`` or an ``Api`` goes, a reader where a writer goes, an operator piped
after one that emits objects, a negative, NaN or endless timeout, an empty object name)
raise a typed error that names the problem, at the call that made it: never a hang, an
``AttributeError`` from deep inside, or a silent wrong answer.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import math
import pkgutil
import re
import sys
import threading
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import reactivex

import rxkube
from rxkube import (
    Api,
    Config,
    aio,
    applied_objects,
    backoff,
    default_backoff,
    metadata_only,
    modify,
    predicate_filter,
    reflect,
    reflect_shared,
    store,
    touched_objects,
    watch_object,
    watcher,
)
from rxkube.events import Apply, Event, Init, InitApply, InitDone
from rxkube.testing import ApiServer
from rxkube.wait import await_condition, await_condition_async

# The pytest plugin's names are fixtures and hooks that pytest calls, not an API to import.
NOT_IMPORTED = {"rxkube.testing.pytest_plugin", "rxkube.__main__", "rxkube.testing.__main__"}


def public_modules() -> list[str]:
    names = ["rxkube"]
    for info in pkgutil.walk_packages(rxkube.__path__, "rxkube."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(set(names) - NOT_IMPORTED)


MODULES = public_modules()


def test_the_public_modules_are_found() -> None:
    assert {"rxkube", "rxkube.operators", "rxkube.aio", "rxkube.testing", "rxkube.errors"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_every_public_module_lists_its_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what it does not define: {missing}"


def _members(name: str) -> Iterator[tuple[str, Any]]:
    """(qualified name, object) of each function, class, method and property ``name`` exports."""
    module = importlib.import_module(name)
    for attr in module.__all__:
        value = getattr(module, attr)
        if isinstance(value, types.ModuleType):
            continue
        if inspect.isclass(value):
            yield f"{name}.{attr}", value
            for member, raw in vars(value).items():
                if member.startswith("_") and member != "__init__":
                    continue
                function = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
                if isinstance(function, property) or inspect.isfunction(function):
                    yield f"{name}.{attr}.{member}", function
        elif inspect.isfunction(value):
            yield f"{name}.{attr}", value


def _problems(function: Callable[..., Any], *, method: bool, init: bool) -> list[str]:
    found = []
    annotations = function.__annotations__
    parameters = list(inspect.signature(function).parameters.values())
    if method and parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    found += [f"parameter {p.name} has no type" for p in parameters if p.name not in annotations]
    if not init and "return" not in annotations:
        found.append("no return type")
    return found


def _undocumented(name: str) -> list[str]:
    found = []
    for qualified, value in _members(name):
        method = qualified.count(".") > name.count(".") + 1
        if isinstance(value, property):
            if not (value.__doc__ or "").strip():
                found.append(f"{qualified}: no docstring")
            if value.fget is not None and "return" not in value.fget.__annotations__:
                found.append(f"{qualified}: no return type")
            continue
        init = qualified.endswith(".__init__")
        # A class's docstring documents its __init__ (mkdocs merges them).
        if not init and not (value.__doc__ or "").strip():
            found.append(f"{qualified}: no docstring")
        if inspect.isclass(value):
            continue
        if init and getattr(value, "__module__", "").startswith("typing"):
            continue  # Protocol's own placeholder __init__
        found += [f"{qualified}: {p}" for p in _problems(value, method=method, init=init)]
    return found


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_has_a_docstring_and_type_hints(name: str) -> None:
    assert _undocumented(name) == []


def test_the_check_finds_a_missing_docstring_and_a_missing_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("rxkube_fake")

    def documented(x: int) -> int:
        """Documented and typed."""
        return x

    def bare(x):  # type: ignore[no-untyped-def]
        return x

    module.documented = documented  # type: ignore[attr-defined]
    module.bare = bare  # type: ignore[attr-defined]
    module.__all__ = ["documented", "bare"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rxkube_fake", module)
    assert _undocumented("rxkube_fake") == [
        "rxkube_fake.bare: no docstring",
        "rxkube_fake.bare: parameter x has no type",
        "rxkube_fake.bare: no return type",
    ]


# -- the obvious mistakes ------------------------------------------------------------


@pytest.fixture
def pods(srv: ApiServer) -> Api:
    return Api(srv.client(), "pods", namespace="default")


def _run(source: reactivex.Observable[Any]) -> list[Any]:
    """The items of a finite source, or the error it ended with, raised."""
    got: list[Any] = []
    errors: list[Exception] = []
    source.subscribe(got.append, errors.append)
    if errors:
        raise errors[0]
    return got


def test_watcher_given_a_selector_string_for_a_config_says_where_it_goes(pods: Api) -> None:
    with pytest.raises(TypeError, match=r"Config\(label_selector='app=web'\)"):
        watcher(pods, "app=web")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be a Config, not dict"):
        watcher(pods, {"label_selector": "app=web"})  # type: ignore[arg-type]


def test_watchers_given_a_resource_name_for_an_api_say_what_they_need() -> None:
    for make in (watcher, rxkube.metadata_watcher):
        with pytest.raises(TypeError, match=r"needs an Api, e\.g\. Api\(Client\.default\(\)"):
            make("pods")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs an Api"):
        watch_object("pods", "web-0")  # type: ignore[arg-type]


def test_watch_object_given_a_name_that_is_not_a_string_refuses_it(pods: Api) -> None:
    with pytest.raises(TypeError, match="name must be a string, not int"):
        watch_object(pods, 5)  # type: ignore[arg-type]


def test_api_given_something_else_than_a_client_or_a_namespace_string_refuses_it(
    pods: Api,
) -> None:
    with pytest.raises(TypeError, match="Api\\(\\) needs a Client"):
        Api("https://cluster", "pods")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="namespace must be a string or None, not 5"):
        Api(pods.client, "pods", namespace=5)  # type: ignore[arg-type]


def test_a_selector_that_is_not_a_string_is_a_type_error_with_an_example() -> None:
    with pytest.raises(TypeError, match="a label selector is a string such as 'app=web"):
        Config(label_selector=123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"a field selector is a string such as 'metadata\.name="):
        Config(field_selector=["metadata.name=a"])  # type: ignore[arg-type]


def test_an_empty_object_name_never_addresses_the_whole_collection(pods: Api) -> None:
    """``delete("")`` would be DELETE on the collection: every pod of the namespace."""
    pods.create(
        {"metadata": {"name": "keep"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    )
    try:
        for call in (
            lambda: pods.get(""),
            lambda: pods.delete(""),
            lambda: pods.patch("", {"metadata": {"labels": {"a": "b"}}}),
        ):
            with pytest.raises(ValueError, match=r"resource name may not be empty \(pods\)"):
                call()
        with pytest.raises(TypeError, match="the name of a Pod must be a string, not int"):
            pods.get(5)  # type: ignore[arg-type]
        assert [p["metadata"]["name"] for p in pods.list()["items"]] == ["keep"]
    finally:
        pods.delete("keep")


_NOT_A_PATH_SEGMENT = [
    ("..", "may not be '..'"),
    (".", "may not be '.'"),
    ("a/b", "may not contain '/'"),
    ("a%2Fb", "may not contain '%'"),
    ("%/", "may not contain '/', may not contain '%'"),
]


@pytest.mark.parametrize(("name", "problem"), _NOT_A_PATH_SEGMENT)
def test_a_name_that_is_no_path_segment_never_reaches_another_object(
    pods: Api, name: str, problem: str
) -> None:
    """``pods/..`` is resolved to the namespace itself before it is sent: ``delete("..")``
    would delete the namespace and everything in it, ``get(".")`` would read the list."""
    pods.create(
        {"metadata": {"name": "keep"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    )
    named = {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    labels = {"metadata": {"labels": {"a": "b"}}}
    for call in (
        lambda: pods.get(name),
        lambda: pods.get(name, metadata_only=True),
        lambda: pods.delete(name),
        lambda: pods.patch(name, labels),
        lambda: pods.patch(name, labels, subresource="status"),
        lambda: pods.replace(named),
        lambda: pods.replace_status(named),
    ):
        with pytest.raises(
            ValueError, match=re.escape(f"invalid resource name {name!r}: {problem}")
        ):
            call()
    namespace = Api(pods.client, "namespaces").get("default")
    assert not namespace["metadata"].get("deletionTimestamp")
    assert [p["metadata"]["name"] for p in pods.list()["items"]] == ["keep"]


@pytest.mark.parametrize(("namespace", "problem"), _NOT_A_PATH_SEGMENT)
def test_a_namespace_that_is_no_path_segment_is_refused_before_any_request(
    pods: Api, namespace: str, problem: str
) -> None:
    """``namespaces/../configmaps`` is ``/api/v1/configmaps``: a list of every namespace."""
    refused = re.escape(f"invalid namespace {namespace!r}: {problem}")
    with pytest.raises(ValueError, match=refused):
        Api(pods.client, "configmaps", namespace=namespace)
    with pytest.raises(ValueError, match=refused):
        Api(pods.client, "nodes", namespace=namespace)  # ignored when valid, never when not
    elsewhere = {"metadata": {"name": "web", "namespace": namespace}}
    for call in (
        lambda: pods.get("web", namespace=namespace),
        lambda: pods.delete("web", namespace=namespace),
        lambda: pods.patch("web", {}, namespace=namespace),
        lambda: pods.create({"metadata": {"name": "web"}}, namespace=namespace),
        lambda: pods.create(elsewhere),
        lambda: pods.replace(elsewhere),
        lambda: pods.replace_status(elsewhere),
    ):
        with pytest.raises(ValueError, match=refused):
            call()


@pytest.mark.parametrize(("subresource", "problem"), _NOT_A_PATH_SEGMENT)
def test_a_subresource_that_is_no_path_segment_is_refused(
    pods: Api, subresource: str, problem: str
) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"invalid subresource {subresource!r}: {problem}")
    ):
        pods.patch("web", {}, subresource=subresource)


def test_writing_something_that_is_not_an_object_is_a_type_error(pods: Api) -> None:
    with pytest.raises(TypeError, match="a Pod to write is a mapping"):
        pods.create("web-0")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a Pod to write is a mapping"):
        pods.replace(["web-0"])  # type: ignore[arg-type]


def test_reflect_given_the_reader_says_it_needs_the_writer() -> None:
    reader, _writer = store()
    for make in (reflect, reflect_shared):
        with pytest.raises(TypeError, match=r"needs the Writer of a store .* not its Store"):
            make(reader)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"needs the Writer of a store .* not str"):
            make("writer")  # type: ignore[arg-type]


def test_operator_functions_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"modify\(\): fn must be callable, not dict"):
        modify({"drop": "managedFields"})  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"predicate_filter\(\): predicate must be callable, not str 'generation'"
    ):
        predicate_filter("generation")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ttl must be positive, not nan"):
        predicate_filter(rxkube.predicates.generation, ttl=math.nan)
    with pytest.raises(TypeError, match="backoff\\(\\) needs a policy with next_delay"):
        backoff(30)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"default_backoff\(\): on_retry must be callable, not str 'log'"
    ):
        default_backoff(on_retry="log")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("operator", "name"),
    [
        (applied_objects, "applied_objects()"),
        (touched_objects, "touched_objects()"),
        (metadata_only, "metadata_only()"),
        (lambda: modify(lambda obj: None), "modify()"),
        (lambda: predicate_filter(rxkube.predicates.generation), "predicate_filter()"),
    ],
)
def test_an_event_operator_after_one_that_emits_objects_says_so(
    operator: Callable[[], Any], name: str
) -> None:
    listed: list[Event] = [Init(), InitApply({"metadata": {"name": "a"}}), InitDone()]
    events = reactivex.from_iterable(listed)
    objects = events.pipe(applied_objects())
    with pytest.raises(TypeError, match=rf"{re.escape(name)} takes watch events .* got dict"):
        _run(objects.pipe(operator()))
    assert len(_run(events.pipe(operator()))) >= 1  # the right stream still flows


def test_an_operator_applied_to_an_api_instead_of_an_observable_says_so(pods: Api) -> None:
    _reader, writer = store()
    operators: list[tuple[Callable[[Any], Any], str]] = [
        (applied_objects(), "applied_objects()"),
        (reflect(writer), "reflect()"),
        (default_backoff(), "default_backoff()"),
    ]
    for operator, name in operators:
        with pytest.raises(TypeError, match=rf"{re.escape(name)} is an operator for an Observable"):
            operator(pods)


@pytest.mark.parametrize(
    ("timeout", "error", "message"),
    [
        (-1, ValueError, "timeout must be 0 or more seconds .*not -1"),
        (math.nan, ValueError, "not nan"),
        ("5", TypeError, "timeout must be a number of seconds or None, not str '5'"),
        (True, TypeError, "not bool True"),
    ],
)
def test_a_wait_given_a_bad_timeout_says_so_at_once(
    pods: Api, timeout: object, error: type[Exception], message: str
) -> None:
    reader, _writer = store()
    with pytest.raises(error, match=r"Store\.wait_until_ready\(\): .*" + message):
        reader.wait_until_ready(timeout)  # type: ignore[arg-type]
    with pytest.raises(error, match=r"await_condition\(\): .*" + message):
        await_condition(pods, "web-0", lambda obj: True, timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [math.inf, 1e12])
def test_a_wait_longer_than_any_wait_can_be_is_no_limit(timeout: float) -> None:
    """``threading`` overflows on these; they mean "no limit", as ``None`` does."""
    reader, writer = store()
    outcome: list[BaseException | None] = []

    def wait() -> None:
        try:
            reader.wait_until_ready(timeout)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait, name="test-wait")
    thread.start()
    listed: list[Event] = [Init(), InitDone()]
    reactivex.from_iterable(listed).pipe(reflect(writer)).subscribe()
    thread.join(30)
    assert not thread.is_alive() and outcome == [None]


def test_an_event_stream_of_the_right_kind_still_passes_every_operator() -> None:
    events: list[Event] = [
        Init(),
        InitApply({"metadata": {"name": "a"}}),
        InitDone(),
        Apply({"metadata": {"name": "a"}}),
    ]
    assert len(_run(reactivex.from_iterable(events).pipe(touched_objects()))) == 2


@pytest.mark.parametrize("module", ["_timeouts", "_callables"])
def test_the_argument_check_examples_run(module: str) -> None:
    import doctest

    result = doctest.testmod(
        importlib.import_module(f"rxkube.{module}"), optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0 and result.failed == 0


# -- the API server's failures, as the user catches them -------------------------------


def _first_error(source: reactivex.Observable[Any]) -> Exception:
    failed = threading.Event()
    errors: list[Exception] = []

    def on_error(error: Exception) -> None:
        errors.append(error)
        failed.set()

    subscription = source.subscribe(on_error=on_error)
    try:
        assert failed.wait(30), "no error within 30 s"
    finally:
        subscription.dispose()
    return errors[0]


def test_a_watch_rbac_denies_fails_with_forbidden_naming_the_request(
    srv: ApiServer, pods: Api
) -> None:
    srv.faults.fail_requests(403, verb="list")
    error = _first_error(watcher(pods))
    assert isinstance(error, rxkube.errors.Forbidden) and error.code == 403
    assert error.status["reason"] == "Forbidden"
    assert "(list pods in default)" in str(error)


def test_a_resource_type_the_server_does_not_serve_is_not_found_and_says_why(
    pods: Api,
) -> None:
    widgets = Api(
        pods.client,
        rxkube.Resource(
            group="example.com", version="v1", plural="widgets", kind="Widget", namespaced=True
        ),
        namespace="default",
    )
    for error in (_first_error(watcher(widgets)), _raised(lambda: widgets.get("w"))):
        assert isinstance(error, rxkube.errors.NotFound)
        assert "serves no such resource type" in str(error)
        assert "CustomResourceDefinition" in str(error)
    missing = _raised(lambda: pods.get("web-0"))
    assert isinstance(missing, rxkube.errors.NotFound)
    assert "resource type" not in str(missing)  # a missing object of a served type


def test_gone_reaches_a_plain_list_as_a_typed_error(srv: ApiServer, pods: Api) -> None:
    srv.faults.fail_requests(410, verb="list")
    error = _raised(pods.list)
    assert isinstance(error, rxkube.errors.Gone) and error.reason == "Expired"


def _raised(call: Callable[[], object]) -> Exception:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("no exception")


@pytest.mark.parametrize("interval", [0, -1, math.nan, math.inf, "1"])
def test_the_test_server_refuses_a_bookmark_interval_it_cannot_keep(interval: object) -> None:
    with pytest.raises(ValueError, match="bookmark_interval must be a positive number"):
        ApiServer(bookmark_interval=interval)  # type: ignore[arg-type]
    server = ApiServer()
    with pytest.raises(ValueError, match="bookmark_interval must be a positive number"):
        server.bookmark_interval = interval  # type: ignore[assignment]
    assert server.bookmark_interval == 1.0


@pytest.mark.parametrize(
    ("host", "error"), [("", ValueError), ("  ", ValueError), (None, TypeError)]
)
def test_the_test_server_refuses_a_host_that_names_no_address(
    host: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="ApiServer: host "):
        ApiServer(host=host)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_the_test_server_on_every_interface_has_a_loopback_url(host: str) -> None:
    try:
        server = ApiServer(host=host).start()
    except OSError:  # no IPv6 here
        pytest.skip(f"cannot listen on {host}")
    try:
        loopback = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        assert server.url.startswith(f"http://{loopback}:")
        with server.client() as client:
            assert client.request("GET", "/version").status == 200
    finally:
        server.stop()


@pytest.mark.parametrize("every", [0, -3, 2.5, True])
def test_the_test_server_refuses_a_compaction_period_that_is_not_a_count(every: object) -> None:
    """``compact_every=-3`` used to compact at every write, silently."""
    with pytest.raises(ValueError, match="compact_every must be a whole number of writes"):
        ApiServer(compact_every=every)  # type: ignore[arg-type]


# -- settings objects and helpers -----------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"concurrency": "2"}, TypeError),
        ({"concurrency": 2.5}, TypeError),
        ({"concurrency": True}, TypeError),
        ({"concurrency": 0}, ValueError),
        ({"debounce": "0.5"}, TypeError),
        ({"debounce": math.nan}, ValueError),
        ({"debounce": -1}, ValueError),
        ({"name": 5}, TypeError),
        ({"reconcile_timeout": "30"}, TypeError),
        ({"reconcile_timeout": math.inf}, ValueError),
        ({"reconcile_timeout": 0}, ValueError),
        ({"resync": "3600"}, TypeError),
        ({"resync": -1}, ValueError),
    ],
)
def test_controller_config_refuses_a_setting_of_the_wrong_type_or_value_naming_it(
    settings: dict[str, Any], error: type[Exception]
) -> None:
    """A type mistake (a string from a settings file) is a TypeError, as in RateLimiter and
    Action, not a ValueError."""
    ((field, value),) = settings.items()
    with pytest.raises(error, match=rf"ControllerConfig\(\): {field} must be .*, not .*{value!r}"):
        rxkube.ControllerConfig(**settings)


@pytest.mark.parametrize(
    "settings", [{"initial": "1"}, {"initial": math.nan}, {"max_delay": math.inf}, {"factor": 0.5}]
)
def test_exponential_backoff_refuses_a_delay_it_could_not_wait(settings: dict[str, Any]) -> None:
    """A NaN delay used to fail only at the first retry, deep in the watch."""
    with pytest.raises(ValueError, match="ExponentialBackoff needs finite numbers"):
        rxkube.ExponentialBackoff(**settings)


def test_store_helpers_refuse_the_wrong_kind_of_argument() -> None:
    reader, _writer = store()
    with pytest.raises(TypeError, match=r"add_index\('app'\): fn must be callable, not str 'app'"):
        reader.add_index("app", "app")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="index_label\\(\\) takes a label key such as 'app'"):
        rxkube.index_label(["app"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer_size must be a whole number, at least 1, got '8'"):
        rxkube.store_shared(buffer_size="8")  # type: ignore[arg-type]


def test_controller_refuses_a_resource_name_and_a_reconcile_that_cannot_be_called(
    pods: Api,
) -> None:
    with pytest.raises(TypeError, match="needs an Api"):
        rxkube.Controller("pods")  # type: ignore[arg-type]
    controller = rxkube.Controller(pods)
    with pytest.raises(
        TypeError, match=r"Controller\.run\(\): reconcile must be callable, not str 'reconcile'"
    ):
        controller.run("reconcile", None, None)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=r"Controller\.run\(\): error_policy must be callable or None, not str 'retry'",
    ):
        controller.run(lambda obj, ctx: rxkube.Action.await_change(), "retry", None)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"await_condition\(\): condition must be callable, not str 'Running'"
    ):
        await_condition(pods, "web-0", "Running", 1)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"await_condition_async\(\): condition must be callable, not int 3"
    ):
        asyncio.run(await_condition_async(pods, "web-0", 3, 1))  # type: ignore[arg-type]


def test_a_leader_elector_on_another_resource_than_leases_is_refused(pods: Api) -> None:
    """Given the pods API, an elector would read and write a Pod as its Lease."""
    with pytest.raises(ValueError, match=r"needs the Leases API of one namespace.* not Api"):
        rxkube.LeaderElector(pods, "lock")


def test_a_store_name_or_key_of_the_wrong_type_is_refused_not_a_silent_miss() -> None:
    """``get(5)`` could never find an object: it answered ``None`` as if none were cached."""
    with pytest.raises(TypeError, match=r"a store's name .* must be a string, not int 5"):
        store(5)  # type: ignore[arg-type]
    reader, writer = store("pods")
    writer.apply(rxkube.Apply({"metadata": {"name": "5", "namespace": "default"}}))
    with pytest.raises(
        TypeError, match=r"Store\.get\(\) takes a name \(a string\) or an ObjectRef"
    ):
        reader.get(5, "default")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a namespace \\(a string or None\\), not '5' and 5"):
        reader.get("5", 5)  # type: ignore[arg-type]
    assert reader.get("5", "default") is not None
    assert {"metadata": {"name": 5, "namespace": "default"}} not in reader


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"server": 5}, TypeError, "server must be a URL string, not int"),
        ({"token": 5}, TypeError, "token must be a string or None, not int"),
        ({"ca_file": b"/ca.pem"}, TypeError, "ca_file must be a string or None, not bytes"),
        ({"ca_data": 3}, TypeError, "ca_data must be PEM \\(str\\) or DER \\(bytes\\), not int"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout must be a positive number"),
        ({"request_timeout": math.nan}, ValueError, "request_timeout must be a positive number"),
    ],
)
def test_a_client_setting_of_the_wrong_kind_is_refused_where_it_is_given(
    settings: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"Client\\(\\): {message}"):
        rxkube.Client(**{"server": "https://127.0.0.1:6443", **settings})


def test_a_token_of_the_wrong_type_is_not_echoed() -> None:
    with pytest.raises(TypeError) as raised:
        rxkube.Client("https://127.0.0.1:6443", token=123456789)  # type: ignore[arg-type]
    assert "123456789" not in str(raised.value)


def test_from_kubeconfig_given_a_path_that_is_not_one_says_so() -> None:
    with pytest.raises(TypeError, match=r"from_kubeconfig\(\): path must be a string or None"):
        rxkube.Client.from_kubeconfig(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"from_kubeconfig\(\): context must be a string or None"):
        rxkube.Client.from_kubeconfig(None, ["ctx"])  # type: ignore[arg-type]


def test_from_kubeconfig_given_an_exec_timeout_that_is_not_a_duration_says_so() -> None:
    with pytest.raises(TypeError, match=r"from_kubeconfig\(\): exec_timeout must be a number"):
        rxkube.Client.from_kubeconfig(exec_timeout="30")  # type: ignore[arg-type]
    for wrong in (-1, math.nan):
        with pytest.raises(ValueError, match=r"from_kubeconfig\(\): exec_timeout must be 0 or"):
            rxkube.Client.from_kubeconfig(exec_timeout=wrong)


def test_an_async_operator_given_its_source_with_its_arguments_says_how_to_call_it() -> None:
    async def events() -> AsyncIterator[rxkube.Event]:
        yield rxkube.Init()

    with pytest.raises(TypeError, match=r"modify\(\.\.\.\)\(source\), or rxkube\.aio\.modify\.raw"):
        aio.modify(events(), lambda obj: obj)  # type: ignore[arg-type, call-arg]
    with pytest.raises(TypeError, match=r"modify\(\): fn must be callable, not int 5"):
        aio.modify(5)(events())  # type: ignore[arg-type]
