"""docker-py scenarios run against a berthd by test/compat/dockerpy.test.ts.

Usage: dockerpy_scenarios.py <scenario> [workdir]. DOCKER_HOST points at the daemon. Each scenario
drives the real docker-py client and prints one JSON object of what it observed on stdout; the
Node test asserts on it, so that a failure shows the client's own exception text.
"""
import datetime
import json
import os
import sys
import time

import docker


def client():
    return docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="auto", timeout=60)


def system():
    c = client()
    env_client = docker.from_env()
    return {
        "ping": c.ping(),
        "from_env_ping": env_client.ping(),
        "version": c.version(),
        "info_keys": sorted(c.info().keys()),
        "api_version": c.api.api_version,
    }


def images():
    c = client()
    listed = [t for i in c.images.list() for t in i.tags]
    img = c.images.get("busybox")
    tagged = img.tag("compat/tagged", "v1")
    after_tag = c.images.get("compat/tagged:v1").id
    c.images.remove("compat/tagged:v1")
    try:
        c.images.get("compat/tagged:v1")
        gone = False
    except docker.errors.ImageNotFound:
        gone = True
    return {"listed": listed, "id": img.id, "tagged": tagged, "same_id": after_tag == img.id, "gone": gone}


def run_output():
    c = client()
    out = c.containers.run("busybox", "echo hi", remove=True)
    return {"output": out.decode()}


def detached():
    c = client()
    ctr = c.containers.run("busybox", ["sh", "-c", "echo started; while true; do sleep 1; done"], detach=True, name="compat-detached")
    deadline = time.time() + 15
    logs = b""
    while time.time() < deadline:
        logs = ctr.logs()
        if b"started" in logs:
            break
        time.sleep(0.2)
    ctr.reload()
    status_running = ctr.status
    ok = ctr.exec_run(["sh", "-c", "echo from-exec; exit 0"])
    bad = ctr.exec_run(["sh", "-c", "echo oops >&2; exit 3"])
    ctr.stop(timeout=1)
    ctr.reload()
    status_stopped = ctr.status
    ctr.remove()
    remaining = [x.name for x in c.containers.list(all=True)]
    return {
        "logs": logs.decode(),
        "running": status_running,
        "exec_ok": [ok.exit_code, ok.output.decode()],
        "exec_bad": [bad.exit_code, bad.output.decode()],
        "stopped": status_stopped,
        "remaining": remaining,
    }


def build(workdir):
    c = client()
    with open(os.path.join(workdir, "Dockerfile"), "w") as f:
        f.write(
            "FROM busybox AS builder\n"
            "RUN mkdir /out && echo built-in-stage-one > /out/greeting\n"
            "COPY hello.txt /out/hello.txt\n"
            "FROM busybox\n"
            "COPY --from=builder /out/ /app/\n"
            'CMD ["sh", "-c", "cat /app/greeting /app/hello.txt"]\n'
        )
    with open(os.path.join(workdir, "hello.txt"), "w") as f:
        f.write("hello-from-context\n")
    image, log = c.images.build(path=workdir, tag="compat/multistage:latest", rm=True)
    stream = "".join(chunk.get("stream", "") for chunk in log)
    out = c.containers.run("compat/multistage:latest", remove=True)
    return {"tags": image.tags, "stream": stream, "output": out.decode()}


def networks():
    c = client()
    net = c.networks.create("compat-net", driver="bridge")
    listed = [n.name for n in c.networks.list()]
    got = c.networks.get(net.id).name
    net.remove()
    after = [n.name for n in c.networks.list()]
    return {"listed": listed, "got": got, "after": after}


def volumes():
    c = client()
    vol = c.volumes.create("compat-vol", labels={"compat": "yes"})
    listed = [v.name for v in c.volumes.list()]
    labels = c.volumes.get("compat-vol").attrs.get("Labels")
    vol.remove()
    after = [v.name for v in c.volumes.list()]
    return {"listed": listed, "labels": labels, "after": after}


def events():
    c = client()
    since = datetime.datetime.utcnow() - datetime.timedelta(seconds=2)
    c.containers.run("busybox", "true", name="compat-events", remove=True)
    until = datetime.datetime.utcnow() + datetime.timedelta(seconds=2)
    seen = []
    started = time.time()
    for ev in c.events(since=since, until=until, decode=True, filters={"type": "container", "container": "compat-events"}):
        seen.append(ev.get("Action") or ev.get("status"))
    return {"actions": seen, "seconds": time.time() - started}


def ps_filters():
    """containers.list filters beyond status/label/name: volume, network, publish, expose."""
    c = client()
    net = c.networks.create("compat-filter-net")
    a = c.containers.run("busybox", "sleep 60", detach=True, name="compat-f-a", volumes={"compat-f-vol": {"bind": "/data", "mode": "rw"}},
                         ports={"80/tcp": ("127.0.0.1", None)}, network="compat-filter-net")
    b = c.containers.run("busybox", "sleep 60", detach=True, name="compat-f-b")

    def names(**filters):
        return sorted(x.name for x in c.containers.list(all=True, filters=filters) if x.name.startswith("compat-f-"))

    host_port = c.api.inspect_container(a.id)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    out = {
        "volume_name": names(volume="compat-f-vol"),
        "volume_dest": names(volume="/data"),
        "volume_none": names(volume="/nowhere"),
        "network_name": names(network="compat-filter-net"),
        "network_id": names(network=net.id[:12]),
        "network_bridge": names(network="bridge"),
        "network_none": names(network="no-such-net"),
        "publish": names(publish=host_port),
        "publish_other": names(publish="1"),
        "expose": names(expose="80/tcp"),
        "expose_range": names(expose="70-90"),
        "expose_udp": names(expose="80/udp"),
    }
    try:
        c.containers.list(filters={"publish": "127.0.0.1:80"})
        out["bad_publish"] = None
    except docker.errors.APIError as e:
        out["bad_publish"] = [e.status_code, e.explanation]
    a.remove(force=True)
    b.remove(force=True)
    net.remove()
    c.volumes.get("compat-f-vol").remove()
    return out


def sizes():
    """SizeRw as dockerd's graph driver counts it: file bytes, not directory blocks."""
    c = client()
    ctr = c.containers.run("busybox", "sleep 60", detach=True, name="compat-sizes")
    fresh = c.api.inspect_container(ctr.id)
    listed = [x for x in c.api.containers(all=True, size=True) if x["Id"] == ctr.id][0]
    ctr.exec_run(["sh", "-c", "mkdir -p /a/b && printf hello > /a/b/f"])
    written = [x for x in c.api.containers(all=True, size=True) if x["Id"] == ctr.id][0]
    ctr.remove(force=True)
    return {"fresh_list": listed["SizeRw"], "after_write": written["SizeRw"], "rootfs_gt": written["SizeRootFs"] > written["SizeRw"], "inspect_has_no_size": "SizeRw" not in fresh}


def dangling(workdir):
    """images.list(filters={"dangling": True}) lists dangling heads only, never build intermediates."""
    c = client()
    ids = []
    for content in ("one", "two"):
        with open(os.path.join(workdir, "Dockerfile"), "w") as f:
            f.write("FROM busybox\nRUN echo %s > /f\nRUN echo more >> /f\nLABEL compat.dangling=yes\n" % content)
        image, _ = c.images.build(path=workdir, tag="compat/dangling:latest", rm=True)
        ids.append(image.id)
    listed = [i.id for i in c.images.list(filters={"dangling": True})]
    listed_all = [i.id for i in c.images.list(all=True, filters={"dangling": True})]
    intermediates = [i.id for i in c.images.list(all=True) if not i.tags]
    parent = c.api.inspect_image(ids[0])["Parent"]
    old_parents = [parent, c.api.inspect_image(parent)["Parent"]]
    pruned = c.images.prune(filters={"dangling": True})
    c.images.remove("compat/dangling:latest")
    return {"old": ids[0], "new": ids[1], "old_parents": old_parents, "listed": listed, "listed_all": listed_all, "intermediates": intermediates,
            "pruned": [d.get("Deleted") for d in (pruned.get("ImagesDeleted") or []) if d.get("Deleted")]}


def registry(host):
    """push to and pull from a local registry, and inspect_distribution / get_registry_data."""
    c = client()
    repo = host + "/compat/pushed"
    c.images.get("busybox").tag(repo, "v1")
    pushed = [json.loads(line) for line in c.images.push(repo, tag="v1").strip().splitlines() if line.strip()]
    c.images.remove(repo + ":v1")
    pulled = c.images.pull(repo, tag="v1")
    dist = c.api.inspect_distribution(repo + ":v1")
    data = c.images.get_registry_data(repo + ":v1")
    try:
        c.api.inspect_distribution(host + "/compat/missing:v1")
        missing = None
    except docker.errors.APIError as e:
        missing = e.status_code
    return {
        "push_aux": [m["aux"] for m in pushed if "aux" in m],
        "push_errors": [m for m in pushed if "error" in m],
        "pulled_tags": pulled.tags,
        "repo_digests": pulled.attrs["RepoDigests"],
        "dist": dist,
        "data_id": data.id,
        "has_platform": data.has_platform("linux/amd64"),
        "missing": missing,
    }


def inspect_shape():
    """attrs["HostConfig"] holds every field dockerd's inspect shows, whatever the request sent."""
    c = client()
    ctr = c.containers.create("busybox", "true", name="compat-shape", mem_limit="64m")
    hc = ctr.attrs["HostConfig"]
    ctr.remove()
    keys = ["CpuQuota", "CpuPeriod", "CpuShares", "NanoCpus", "PidsLimit", "OomKillDisable", "MemorySwappiness", "Memory", "MemorySwap",
            "MemoryReservation", "Links", "PortBindings", "VolumesFrom", "GroupAdd", "SecurityOpt", "IpcMode", "PidMode", "UTSMode",
            "UsernsMode", "PublishAllPorts", "Devices", "Ulimits", "BlkioWeight", "CpusetCpus", "OomScoreAdj", "Isolation", "CgroupParent"]
    return {"missing": [k for k in keys if k not in hc], "memory": hc["Memory"], "cpu_quota": hc["CpuQuota"], "has_init": "Init" in hc}


SCENARIOS = {
    "system": system,
    "images": images,
    "run_output": run_output,
    "detached": detached,
    "build": build,
    "networks": networks,
    "volumes": volumes,
    "events": events,
    "ps_filters": ps_filters,
    "sizes": sizes,
    "dangling": dangling,
    "registry": registry,
    "inspect_shape": inspect_shape,
}

if __name__ == "__main__":
    name = sys.argv[1]
    fn = SCENARIOS[name]
    result = fn(sys.argv[2]) if len(sys.argv) > 2 else fn()
    print(json.dumps(result))
