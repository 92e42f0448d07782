"""A real Redis Cluster on loopback: primaries and replicas of the machine's ``redis-server``.

Tests take it from the session fixture ``redis_cluster`` (``tests/conftest.py``); people and
benchmarks from ``scripts/redis-cluster start|status|stop|run``. Every node is a child
``redis-server`` (not daemonized, so its handle is ours) with its config, data and log in one
temporary directory. ``stop()`` kills them all and removes the directory, and so does the
interpreter's exit; nodes started from the main thread also die with the process that started
them (``PR_SET_PDEATHSIG``), so even a killed test run leaves no server behind.

Typical use (the fixture does this)::

    cluster = LocalRedisCluster().start()
    client = cluster.client()                  # redis.cluster.RedisCluster
    primary = cluster.primary_for_key("pz:{v:1}")
    cluster.kill(primary)
    promoted = cluster.wait_failover(primary)  # its replica now serves those slots
    cluster.restart(primary)                   # back, as a replica of ``promoted``
    cluster.stop()
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from redis.crc import key_slot

if TYPE_CHECKING:
    import redis.asyncio.cluster
    import redis.cluster

HOST = "127.0.0.1"
SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
# Ports for nodes and their buses stay below Linux's ephemeral range (32768-60999), so no
# client socket of another process takes one between our probe and the node's bind.
FIRST_PORT, LAST_BUS_PORT = 7000, 32767
RESERVED_PORTS = frozenset({6379, 16379})  # the machine's standard Redis
LOCK_FILE = Path(tempfile.gettempdir()) / "personalize-redis-cluster.lock"


class ClusterError(RuntimeError):
    """The local cluster did not start, or did not reach the state a caller waited for."""


def missing_binaries() -> list[str]:
    """The programs this harness needs that are not on ``PATH``."""
    return [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]


@dataclass(frozen=True, slots=True)
class NodeView:
    """One line of ``CLUSTER NODES``: how one node sees another (or itself).

    >>> line = "ab12 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 5462"
    >>> view = parse_cluster_nodes(line)[0]
    >>> view.port, view.is_primary, view.failed, view.slots
    (7000, True, False, ((0, 5460), (5462, 5462)))
    >>> replica = parse_cluster_nodes("cd34 127.0.0.1:7003@17003 slave,fail ab12 0 0 1 connected")
    >>> sorted(replica[0].flags), replica[0].primary_id, replica[0].failed, replica[0].slots
    (['fail', 'slave'], 'ab12', True, ())
    """

    id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        """Marked failing (``fail``) or suspected (``fail?``) by the node that reported it."""
        return bool(self.flags & {"fail", "fail?"})

    def owns(self, slot: int) -> bool:
        return any(start <= slot <= end for start, end in self.slots)


def parse_cluster_nodes(text: str) -> list[NodeView]:
    """The reply of ``CLUSTER NODES`` as :class:`NodeView` records (importing and migrating
    markers such as ``[42->-id]`` are left out of ``slots``)."""
    views = []
    for line in text.strip().splitlines():
        node_id, address, flags, primary, _ping, _pong, _epoch, _link, *slots = line.split()
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        ranges = []
        for item in slots:
            if item.startswith("["):
                continue
            start, _, end = item.partition("-")
            ranges.append((int(start), int(end or start)))
        views.append(
            NodeView(
                id=node_id,
                port=port,
                flags=frozenset(flags.split(",")),
                primary_id=None if primary == "-" else primary,
                slots=tuple(ranges),
            )
        )
    return views


def parse_info(text: str) -> dict[str, str]:
    """``CLUSTER INFO`` (or ``INFO``) as a dict of strings.

    >>> parse_info("# Cluster\\r\\ncluster_state:ok\\r\\ncluster_slots_ok:16384\\r\\n")
    {'cluster_state': 'ok', 'cluster_slots_ok': '16384'}
    """
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value for key, value in pairs}


@dataclass(eq=False)
class Node:
    """One ``redis-server`` of the cluster: its port, directory and process."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    pid: int | None = None  # a node started by another process (``scripts/redis-cluster``)
    id: str = ""  # the cluster's node id; it survives restarts (kept in nodes.conf)
    paused: bool = False  # SIGSTOP: alive but silent, like a host cut off the network

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.state}>"

    @property
    def state(self) -> str:
        if not self.running:
            return "not running"
        return "paused" if self.paused else "running"

    @property
    def name(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.name}"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    @property
    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and _is_our_server(self.pid, self.port)

    def connection(self, timeout: float = 1.0) -> redis.Redis:
        """A plain client of this node alone (no redirections), text replies."""
        return redis.Redis(
            host=HOST,
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )

    def command(self, *args: Any, timeout: float = 1.0) -> Any:
        with self.connection(timeout) as client:
            return client.execute_command(*args)

    def info(self, *command: str) -> dict[str, str]:
        """``CLUSTER INFO`` or ``INFO <section>`` of this node, values as text."""
        reply = self.command(*command)
        if isinstance(reply, dict):  # redis-py parses INFO itself
            return {key: str(value) for key, value in reply.items()}
        return parse_info(reply)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


def _is_our_server(pid: int, port: int) -> bool:
    """True when ``pid`` is alive and still a redis-server on ``port`` (not a reused pid)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "redis-server" in title and f":{port}" in title


def _port_is_free(port: int) -> bool:
    # No SO_REUSEADDR: a port in any use at all, even TIME_WAIT, counts as taken.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port_block(count: int, rng: random.Random | None = None) -> list[int]:
    """``count`` consecutive free loopback ports whose bus ports (+10000) are free too.

    >>> ports = free_port_block(6)
    >>> ports == list(range(ports[0], ports[0] + 6)) and ports[-1] + BUS_OFFSET <= LAST_BUS_PORT
    True
    """
    rng = rng or random.Random()
    last_first = LAST_BUS_PORT - BUS_OFFSET - count + 1
    for _ in range(200):
        first = rng.randint(FIRST_PORT, last_first)
        ports = list(range(first, first + count))
        wanted = ports + [port + BUS_OFFSET for port in ports]
        if not RESERVED_PORTS.intersection(wanted) and all(map(_port_is_free, wanted)):
            return ports
    raise ClusterError(f"found no {count} free consecutive loopback ports in 200 tries")


@contextlib.contextmanager
def _port_lock() -> Iterator[None]:
    """Serializes port choice and binding among this harness's runs (other worktrees, the
    CLI); anything else that takes a port meanwhile is caught by the retry in ``start``."""
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


DIRECTORY_PREFIX = "personalize-redis-cluster-"
OWNER_LOCK = "owner.lock"  # held by the process that owns the nodes, for as long as it lives


def remove_abandoned_directories(parent: Path | None = None) -> list[Path]:
    """Remove the directories of clusters whose owner died without cleaning up (a test run
    that was SIGKILLed: its nodes died with it, their directory stayed). A directory whose
    owner lock is still held, or that has none (a detached ``scripts/redis-cluster start``),
    is left alone."""
    removed = []
    for directory in Path(parent or tempfile.gettempdir()).glob(DIRECTORY_PREFIX + "*"):
        try:
            with (directory / OWNER_LOCK).open("r") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(directory, ignore_errors=True)
                removed.append(directory)
        except OSError:  # no lock file, or its owner is alive
            continue
    return removed


def _die_with_parent() -> list[str]:
    """A command prefix that makes the node get SIGKILL when this process goes away, on
    Linux, when called from the main thread (the signal follows the thread that forked, and a
    worker thread may end long before the process).

    util-linux's ``setpriv --pdeathsig`` sets it and execs the node: nothing of Python runs
    between fork and exec. A ``preexec_fn`` did the same in Python, in the child of a process
    that by then runs many threads (store threads, executors), which can deadlock the child
    before exec; ``Popen`` then waits for it for ever (a CI run hung there, at the session's
    first start of a cluster). Without setpriv the prefix is empty: a SIGKILLed run's nodes
    then outlive it, and the next run sweeps their directory (:func:`remove_abandoned_directories`).
    """
    if not sys.platform.startswith("linux"):
        return []
    if threading.current_thread() is not threading.main_thread():
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class LocalRedisCluster:
    """``primaries`` primaries with ``replicas`` replicas each, on free loopback ports.

    ``node_timeout`` (milliseconds) is how long a silent node takes to be marked failing, so a
    failover takes a second or two more than that. ``full_coverage=False`` sets
    ``cluster-require-full-coverage no``: the other primaries keep serving while one's slots
    have no owner (with ``yes``, Redis's default, every slot refuses commands meanwhile).
    ``detach=True`` is for ``scripts/redis-cluster start``: the nodes outlive this process and
    nothing stops them at exit.
    """

    def __init__(
        self,
        *,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout: int = 1500,  # milliseconds
        full_coverage: bool = True,
        detach: bool = False,
        base_dir: Path | None = None,
    ) -> None:
        if primaries < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 primaries")
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout = node_timeout
        self.full_coverage = full_coverage
        self.detach = detach
        self._base_dir = base_dir
        self.directory: Path | None = None
        self.nodes: list[Node] = []
        self._processes: list[subprocess.Popen[bytes]] = []  # every one ever started
        self._owner_lock: Any = None
        self._slots_of_killed: dict[int, tuple[tuple[int, int], ...]] = {}

    def __repr__(self) -> str:
        return f"<LocalRedisCluster {self.url or 'stopped'}>"

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses and clients ---------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """``redis://127.0.0.1:PORT`` of every node (each a valid startup node)."""
        return [node.url for node in self.nodes]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        """Every node in one URL, ``redis+cluster://h:p,h:p,.../`` (redis-py does not parse
        this form: it is for our own configuration)."""
        if not self.nodes:
            return ""
        return "redis+cluster://" + ",".join(node.name for node in self.nodes) + "/"

    def client(self, **kwargs: Any) -> redis.cluster.RedisCluster:
        """A blocking ``redis.cluster.RedisCluster`` on every node as a startup node."""
        from redis.cluster import ClusterNode, RedisCluster

        kwargs.setdefault("socket_connect_timeout", 1.0)
        kwargs.setdefault("socket_timeout", 2.0)
        nodes = self.startup_nodes  # redis-py's blocking ClusterNode has no annotations
        startup = [ClusterNode(host, port) for host, port in nodes]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=startup, **kwargs)

    def async_client(self, **kwargs: Any) -> redis.asyncio.cluster.RedisCluster:
        """A ``redis.asyncio.cluster.RedisCluster`` on every node as a startup node."""
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        kwargs.setdefault("socket_connect_timeout", 1.0)
        kwargs.setdefault("socket_timeout", 2.0)
        startup = [ClusterNode(host, port) for host, port in self.startup_nodes]
        return RedisCluster(startup_nodes=startup, **kwargs)

    # -- topology ----------------------------------------------------------------------------

    def node(self, port: int) -> Node:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def running_nodes(self) -> list[Node]:
        """The nodes that run and answer (not killed, not paused)."""
        return [node for node in self.nodes if node.running and not node.paused]

    def topology(self) -> list[NodeView]:
        """``CLUSTER NODES`` as seen by the first node that answers."""
        errors = []
        for node in self.running_nodes():
            try:
                return parse_cluster_nodes(node.command("CLUSTER", "NODES"))
            except redis.RedisError as exc:
                errors.append(f"{node.name}: {exc}")
        raise ClusterError(self._explain("no node answers CLUSTER NODES: " + "; ".join(errors)))

    def primary_for_slot(self, slot: int) -> Node:
        for view in self.topology():
            if view.is_primary and not view.failed and view.owns(slot):
                return self.node(view.port)
        raise ClusterError(self._explain(f"no live primary serves slot {slot}"))

    def primary_for_key(self, key: str | bytes) -> Node:
        """The node that serves ``key`` now (``{hash tags}`` honoured)."""
        raw = key.encode() if isinstance(key, str) else key
        return self.primary_for_slot(key_slot(raw))

    def replica_of(self, primary: Node) -> Node:
        """A live replica of ``primary``."""
        views = self.topology()
        primary_id = next(view.id for view in views if view.port == primary.port)
        for view in views:
            if view.primary_id == primary_id and not view.failed and "slave" in view.flags:
                return self.node(view.port)
        raise ClusterError(self._explain(f"{primary.name} has no live replica"))

    def primary_nodes(self) -> list[Node]:
        return [
            self.node(view.port)
            for view in self.topology()
            if view.is_primary and view.slots and not view.failed
        ]

    # -- life cycle --------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> LocalRedisCluster:
        """Start the nodes, create the cluster and wait until it is healthy."""
        missing = missing_binaries()
        if missing:
            raise ClusterError(f"not on PATH: {', '.join(missing)} (apt-get install redis-server)")
        if self.nodes:
            raise ClusterError(f"{self!r} is already started")
        if not self.detach:
            atexit.register(self.stop)
        try:
            self._start_nodes()
            self._create()
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_nodes(self) -> None:
        count = self.primaries * (1 + self.replicas)
        with _port_lock():  # so no other run sweeps this directory before it is locked
            remove_abandoned_directories(self._base_dir)
            self.directory = Path(tempfile.mkdtemp(prefix=DIRECTORY_PREFIX, dir=self._base_dir))
            if not self.detach:
                self._owner_lock = (self.directory / OWNER_LOCK).open("w")
                fcntl.flock(self._owner_lock, fcntl.LOCK_EX)
        for attempt in range(5):
            with _port_lock():
                ports = free_port_block(count)
                self.nodes = [Node(port, self.directory / str(port)) for port in ports]
                for node in self.nodes:
                    node.directory.mkdir()
                    self._spawn(node)
                try:
                    self._wait(self._all_answer, 15.0, "nodes answering PING")
                    return
                except ClusterError:
                    taken = any("Address already in use" in n.log_tail() for n in self.nodes)
                    if not taken or attempt == 4:
                        raise
            self._kill_all()  # another program took a port meanwhile: new ports
            for node in self.nodes:
                shutil.rmtree(node.directory, ignore_errors=True)

    def _spawn(self, node: Node) -> None:
        server = shutil.which("redis-server")
        assert server is not None
        command = [
            *([] if self.detach else _die_with_parent()),
            server,
            "--port", str(node.port),
            "--bind", HOST,
            "--protected-mode", "no",
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node.directory / "nodes.conf"),
            "--cluster-node-timeout", str(self.node_timeout),
            "--cluster-require-full-coverage", "yes" if self.full_coverage else "no",
            "--dir", str(node.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(node.log_file),
            # Replicas sync at once (the default waits 5 s to batch replicas together).
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C for the tests is not a shutdown for the nodes
        )
        node.process, node.pid = process, process.pid
        self._processes.append(process)

    def _create(self) -> None:
        cli = shutil.which("redis-cli")
        assert cli is not None
        command = [cli, "--cluster", "create", *(node.name for node in self.nodes)]
        command += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(self._explain(f"{' '.join(command)} hung: {exc.stdout!r}")) from exc
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in done.stdout:
            output = (done.stdout + done.stderr)[-2000:]
            raise ClusterError(self._explain(f"redis-cli --cluster create failed:\n{output}"))
        ids = {view.port: view.id for view in self.topology()}
        for node in self.nodes:
            node.id = ids[node.port]

    def stop(self) -> None:
        """Kill every node and remove the directory; safe to call twice, and at exit."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        for node in self.nodes:
            node.paused = False
        self._kill_all()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        if self._owner_lock is not None:
            self._owner_lock.close()
            self._owner_lock = None
        self.nodes = []

    def _kill_all(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        self._processes = []
        for node in self.nodes:  # started by another process: only if still that server
            if node.process is None and node.pid is not None and node.running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGKILL)
        for node in self.nodes:
            if node.process is None and node.pid is not None:
                deadline = time.monotonic() + 5
                while node.running and time.monotonic() < deadline:
                    time.sleep(0.02)

    # -- failures ----------------------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """SIGKILL one node (no shutdown, no goodbye to the cluster): its connections are
        reset and new ones refused at once."""
        self._remember_slots(node)
        node.paused = False
        if node.process is not None:
            node.process.kill()
            node.process.wait(5)
        elif node.pid is not None and node.running:
            os.kill(node.pid, signal.SIGKILL)

    def pause(self, node: Node) -> None:
        """SIGSTOP one node: connections stay open and go silent, as when its host drops off
        the network; clients wait for their timeouts. ``resume`` brings it back."""
        self._remember_slots(node)
        self._signal(node, signal.SIGSTOP)
        node.paused = True

    def resume(self, node: Node, timeout: float = 30.0) -> None:
        """SIGCONT a paused node and wait until the cluster is healthy again (a primary that
        was replaced meanwhile rejoins as a replica)."""
        self._signal(node, signal.SIGCONT)
        node.paused = False
        self._slots_of_killed.pop(node.port, None)
        self.wait_healthy(timeout)

    def _signal(self, node: Node, signum: int) -> None:
        if not node.running or node.pid is None:
            raise ClusterError(f"{node.name} is not running")
        os.kill(node.pid, signum)

    def _remember_slots(self, node: Node) -> None:
        view = next(v for v in self.topology() if v.port == node.port)
        if view.is_primary and view.slots:
            self._slots_of_killed[node.port] = view.slots

    def wait_failover(self, old_primary: Node, timeout: float = 30.0) -> Node:
        """Wait until a replica of the killed (or paused) ``old_primary`` serves its slots and
        every running node says ``cluster_state:ok``; return the promoted node."""
        slots = self._slots_of_killed.get(old_primary.port)
        if not slots:
            raise ClusterError(f"{old_primary.name} was not a primary when it went down")
        promoted: list[Node] = []

        def promoted_everywhere() -> str | None:
            owners = set()
            for node in self.running_nodes():
                info = node.info("CLUSTER", "INFO")
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return f"{node.name}: {info.get('cluster_state')}, {_slots_ok(info)}"
                views = parse_cluster_nodes(node.command("CLUSTER", "NODES"))
                owner = [v for v in views if v.is_primary and v.owns(slots[0][0])]
                if len(owner) != 1 or owner[0].port == old_primary.port:
                    return f"{node.name} still sees slot {slots[0][0]} on {old_primary.name}"
                owners.add(owner[0].port)
            if len(owners) != 1:
                return f"nodes disagree on who serves slot {slots[0][0]}: {sorted(owners)}"
            promoted[:] = [self.node(owners.pop())]
            return None

        self._wait(promoted_everywhere, timeout, f"failover of {old_primary.name}")
        return promoted[0]

    def restart(self, node: Node, timeout: float = 30.0) -> None:
        """Start a killed node again (same port and nodes.conf) and wait until it has rejoined
        as a replica in sync and the whole cluster is healthy again."""
        if node.running:
            raise ClusterError(f"{node.name} is running")
        with _port_lock():
            self._spawn(node)
        self._slots_of_killed.pop(node.port, None)

        def rejoined() -> str | None:
            info = node.info("INFO", "replication")
            if info.get("role") != "slave" or info.get("master_link_status") != "up":
                role, link = info.get("role"), info.get("master_link_status")
                return f"{node.name}: role {role}, link {link}"
            return None

        self._wait(rejoined, timeout, f"{node.name} rejoining as a replica")
        self.wait_healthy(timeout)

    def ensure_healthy(self, timeout: float = 30.0) -> None:
        """Restart any node that is down, then wait until the cluster is healthy."""
        for node in self.nodes:
            if node.paused:
                self.resume(node, timeout)
            elif not node.running:
                self.restart(node, timeout)
        self.wait_healthy(timeout)

    # -- waiting -----------------------------------------------------------------------------

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every node is running, says ``cluster_state:ok`` with all slots served,
        agrees with the others on who serves what, every replica is in sync, and every node
        lists every replica in ``CLUSTER SLOTS``."""
        self._wait(self._unhealthy, timeout, "a healthy cluster")

    def _all_answer(self) -> str | None:
        for node in self.nodes:
            if not node.running:
                raise ClusterError(self._explain(f"{node.name} exited at start"))
            try:
                node.command("PING", timeout=0.5)
            except redis.RedisError as exc:
                return f"{node.name}: {exc}"
        return None

    def _unhealthy(self) -> str | None:
        """What is not healthy yet, or None."""
        maps = set()
        for node in self.nodes:
            if node.state != "running":
                return f"{node.name} is {node.state}"
            info = node.info("CLUSTER", "INFO")
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                return f"{node.name}: {info.get('cluster_state')}, {_slots_ok(info)}"
            if info.get("cluster_known_nodes") != str(len(self.nodes)):
                return f"{node.name} knows {info.get('cluster_known_nodes')} nodes"
            views = parse_cluster_nodes(node.command("CLUSTER", "NODES"))
            bad = [f"{v.port}:{','.join(sorted(v.flags))}" for v in views if _troubled(v)]
            if bad:
                return f"{node.name} sees {bad}"
            primaries = {v.id: v for v in views if v.is_primary and v.slots}
            if len(primaries) != self.primaries:
                return f"{node.name} sees {len(primaries)} primaries with slots"
            for view in primaries.values():
                followers = [v for v in views if v.primary_id == view.id]
                if len(followers) != self.replicas:
                    return f"{node.name} sees {len(followers)} replicas of {view.port}"
            maps.add(tuple(sorted((v.port, v.slots) for v in primaries.values())))
            replication = node.info("INFO", "replication")
            if replication.get("role") == "slave":
                link = replication.get("master_link_status")
                if link != "up":
                    return f"{node.name}: link to its primary is {link}"
            elif replication.get("connected_slaves") != str(self.replicas):
                return f"{node.name} has {replication.get('connected_slaves')} replicas connected"
        if len(maps) != 1:
            return f"nodes disagree on the slot map: {maps}"
        return self._replicas_unlisted()

    def _replicas_unlisted(self) -> str | None:
        """Whether ``CLUSTER SLOTS`` leaves out replicas: Redis 7 lists a replica there only
        once its replication offset is not 0, and the clients that wait for replicas
        (``RedisStore``) learn of them from that reply. A primary that never sent its replicas
        anything gets a write, which expires."""
        for node in self.running_nodes():
            for start, _end, primary, *replicas in node.command("CLUSTER", "SLOTS"):
                if len(replicas) < self.replicas:
                    owner = self.node(int(primary[1]))
                    owner.command("SET", _key_in_slot(start), "", "PX", 1000)
                    return f"{node.name} lists {len(replicas)} replicas of {owner.name}"
        return None

    def _wait(self, pending: Callable[[], str | None], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        reason = "not checked"
        while True:
            try:
                result = pending()
            except redis.RedisError as exc:
                result = f"{type(exc).__name__}: {exc}"
            if result is None:
                return
            reason = result
            if time.monotonic() > deadline:
                raise ClusterError(self._explain(f"no {what} after {timeout:g} s: {reason}"))
            time.sleep(0.05)

    def _explain(self, message: str) -> str:
        """``message`` with every node's state and the tail of its log."""
        parts = [message]
        for node in self.nodes:
            parts.append(f"--- {node.name} ({node.state}), {node.log_file}:\n{node.log_tail()}")
        return "\n".join(parts)

    # -- for people --------------------------------------------------------------------------

    def status(self) -> str:
        """One line per node: address, role, slots, state."""
        lines = [f"{self.url}  ({self.directory})"]
        try:
            views = {view.port: view for view in self.topology()}
        except ClusterError:
            views = {}
        by_id = {view.id: view.port for view in views.values()}
        for node in self.nodes:
            view = views.get(node.port)
            if node.state != "running":
                lines.append(f"{node.name}  {node.state}")
            elif view is None:
                lines.append(f"{node.name}  running, not in the cluster")
            elif view.is_primary:
                ranges = " ".join(f"{a}-{b}" for a, b in view.slots)
                lines.append(f"{node.name}  primary  slots {ranges or '-'}")
            else:
                primary = by_id.get(view.primary_id or "", "?")
                lines.append(f"{node.name}  replica of {HOST}:{primary}")
        return "\n".join(lines)

    def state(self) -> dict[str, Any]:
        """What ``scripts/redis-cluster`` keeps between its commands."""
        return {
            "directory": str(self.directory),
            "primaries": self.primaries,
            "replicas": self.replicas,
            "node_timeout": self.node_timeout,
            "full_coverage": self.full_coverage,
            "nodes": [{"port": n.port, "pid": n.pid, "id": n.id} for n in self.nodes],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LocalRedisCluster:
        """A handle on a cluster another process started (``scripts/redis-cluster``)."""
        cluster = cls(
            primaries=state["primaries"],
            replicas=state["replicas"],
            node_timeout=state["node_timeout"],
            full_coverage=state["full_coverage"],
            detach=True,
        )
        cluster.directory = Path(state["directory"])
        cluster.nodes = [
            Node(port, cluster.directory / str(port), pid=item["pid"], id=item["id"])
            for item in state["nodes"]
            for port in [item["port"]]
        ]
        return cluster


def _key_in_slot(slot: int) -> str:
    """A key of the harness that hashes to ``slot``.

    >>> key_slot(_key_in_slot(42).encode())
    42
    """
    for n in range(1_000_000):
        key = f"harness:{n}"
        if key_slot(key.encode()) == slot:
            return key
    raise ClusterError(f"no key of slot {slot}")


def _slots_ok(info: dict[str, str]) -> str:
    return f"{info.get('cluster_slots_ok', '?')}/{SLOTS} slots ok"


def _troubled(view: NodeView) -> bool:
    return view.failed or bool(view.flags & {"handshake", "noaddr"})


# -- scripts/redis-cluster ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/redis-cluster",
        description="A local Redis Cluster on loopback ports, for trying things and benchmarks.",
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=Path(".redis-cluster.json"),
        help="where `start` records the cluster for `status` and `stop` (default: %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a cluster that runs until `stop`")
    run = commands.add_parser("run", help="start a cluster, run a command, stop the cluster")
    for sub in (start, run):
        sub.add_argument("--primaries", type=int, default=3)
        sub.add_argument("--replicas", type=int, default=1, help="per primary")
        sub.add_argument("--node-timeout", type=int, default=1500, help="milliseconds")
        sub.add_argument(
            "--no-full-coverage",
            action="store_true",
            help="cluster-require-full-coverage no: the other primaries serve on in a failover",
        )
    run.add_argument("argv", nargs=argparse.REMAINDER, help="the command (after --)")
    commands.add_parser("status", help="roles, slots and state of every node")
    commands.add_parser("stop", help="kill every node and remove its directory")
    args = parser.parse_args(argv)

    if args.command in ("start", "run"):
        options = {
            "primaries": args.primaries,
            "replicas": args.replicas,
            "node_timeout": args.node_timeout,
            "full_coverage": not args.no_full_coverage,
        }
        if args.command == "run":
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not command:
                parser.error("run needs a command: scripts/redis-cluster run -- CMD ...")
            with LocalRedisCluster(**options) as cluster:
                env = dict(os.environ, REDIS_CLUSTER_URL=cluster.url)
                print(cluster.status(), file=sys.stderr, flush=True)
                return subprocess.call(command, env=env)
        if args.state.exists():
            previous = LocalRedisCluster.from_state(json.loads(args.state.read_text()))
            if previous.running_nodes():
                print(f"already running (see {args.state}):\n{previous.status()}", file=sys.stderr)
                return 1
        cluster = LocalRedisCluster(detach=True, **options).start()
        args.state.write_text(json.dumps(cluster.state(), indent=2) + "\n")
        print(cluster.status())
        return 0

    if not args.state.exists():
        print(f"no cluster recorded in {args.state}", file=sys.stderr)
        return 1 if args.command == "status" else 0
    cluster = LocalRedisCluster.from_state(json.loads(args.state.read_text()))
    if args.command == "status":
        print(cluster.status())
        return 0 if len(cluster.running_nodes()) == len(cluster.nodes) else 1
    cluster.stop()
    args.state.unlink()
    print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
