#!/usr/bin/env python3
"""Writes the seed corpora (Fuzz/Corpus/TARGET/*): a few small, valid inputs per target
that reach deep into each parser, for libFuzzer to mutate. Run from anywhere; rewrites
the seeds in place. The formats are those documented at the top of each target."""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")
NEXT, WRITE, INDIRECT = 1, 2, 4
VERSION_1 = 1 << 32
EVENT_IDX, INDIRECT_DESC = 1 << 29, 1 << 28


def seed(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


class Ram:
    """Guest RAM from address 0, as the virtio targets lay it out."""

    def __init__(self):
        self.b = bytearray()

    def put(self, at, data):
        if len(self.b) < at + len(data):
            self.b.extend(bytes(at + len(data) - len(self.b)))
        self.b[at:at + len(data)] = data


QUEUE_SIZE = 8


def queue_base(q):
    return q * 0x400


def queue_header(q):
    b = queue_base(q)
    return struct.pack("<HIII", QUEUE_SIZE, b, b + 0x100, b + 0x200)


def add_chains(ram, q, chains):
    """chains: lists of (address, length, flags) descriptors; NEXT links added here."""
    desc, avail = queue_base(q), queue_base(q) + 0x100
    index = 0
    heads = []
    for chain in chains:
        heads.append(index)
        for i, (addr, length, flags) in enumerate(chain):
            last = i == len(chain) - 1
            ram.put(desc + 16 * index,
                    struct.pack("<QIHH", addr, length, flags | (0 if last else NEXT), 0 if last else index + 1))
            index += 1
    ram.put(avail, struct.pack("<HH", 0, len(heads)) + b"".join(struct.pack("<H", h) for h in heads))


def rig_input(features, queues, ram):
    return struct.pack("<Q", features) + b"".join(queue_header(q) for q in range(queues)) + bytes(ram.b)


# --- virtio devices through the transport (VirtioRig) ---

ram = Ram()
add_chains(ram, 0, [[(0x1000, 64, WRITE)], [(0x1100, 16, WRITE), (0x1200, 300, WRITE)]])
seed("rng", "two-requests", rig_input(VERSION_1 | EVENT_IDX, 1, ram))
ram = Ram()
ram.put(0x1800, struct.pack("<QIHH", 0x1000, 32, WRITE, 1) + struct.pack("<QIHH", 0x1100, 32, WRITE, 0))
add_chains(ram, 0, [[(0x1800, 32, INDIRECT)]])
seed("rng", "indirect", rig_input(VERSION_1 | INDIRECT_DESC, 1, ram))

# balloon: a first byte (bit 0: no acknowledge on STOP), then the rig's input; queues
# inflate, deflate, statistics, hinting, reporting; the run's id is at 0xFFFC.
BALLOON_ALL = VERSION_1 | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 5)
ram = Ram()
ram.put(0x1800, struct.pack("<III", 4, 5, 100000))
ram.put(0x1900, struct.pack("<HQHQ", 4, 1 << 20, 5, 1 << 21))
add_chains(ram, 0, [[(0x1800, 12, 0)]])
add_chains(ram, 1, [[(0x1800, 8, 0)]])
add_chains(ram, 2, [[(0x1900, 20, 0)]])
add_chains(ram, 3, [[(0xFFFC, 4, 0)], [(0x3000, 0x1000, WRITE)], [(0xFFFC, 4, 0)]])
add_chains(ram, 4, [[(0x2000, 0x1000, WRITE)]])
seed("balloon", "every-queue", b"\0" + rig_input(BALLOON_ALL, 5, ram))


def blk(kind, sector, data_len, data_flags, extra=b""):
    ram = Ram()
    ram.put(0x1000, struct.pack("<IIQ", kind, 0, sector))
    chain = [(0x1000, 16, 0)]
    if extra:
        ram.put(0x1100, extra)
        chain.append((0x1100, len(extra), 0))
    if data_len:
        chain.append((0x1200, data_len, data_flags))
    chain.append((0x1800, 1, WRITE))
    add_chains(ram, 0, [chain])
    return rig_input(VERSION_1 | EVENT_IDX | INDIRECT_DESC | (1 << 9) | (1 << 13) | (1 << 14), 1, ram)


seed("blk", "read", blk(0, 1, 512, WRITE))
seed("blk", "write", blk(1, 2, 1024, 0))
seed("blk", "flush", blk(4, 0, 0, 0))
seed("blk", "get-id", blk(8, 0, 20, WRITE))
seed("blk", "discard", blk(11, 0, 0, 0, struct.pack("<QII", 8, 16, 0)))
seed("blk", "write-zeroes", blk(13, 0, 0, 0, struct.pack("<QII", 4, 4, 1)))

ram = Ram()
frame = bytes(12) + b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x06" + bytes(46)
ram.put(0x1000, frame)
ram.put(0x1400, struct.pack("<BBHHHH", 1, 1, 54, 0, 14, 16))  # NEEDS_CSUM, TSO4 header
add_chains(ram, 0, [[(0x2000, 1526, WRITE)], [(0x2800, 1526, WRITE)]])
add_chains(ram, 1, [[(0x1000, len(frame), 0)], [(0x1400, 12, 0), (0x1000 + 12, len(frame) - 12, 0)]])
seed("net", "tx-and-rx", rig_input(VERSION_1 | (1 << 15) | 1 | (1 << 11), 2, ram))


def vsock_packet(op, src_port, dst_port, payload=b"", dst_cid=2, flags=0):
    return struct.pack("<QQIIIHHIII", 3, dst_cid, src_port, dst_port, len(payload), 1, op, flags, 65536, 0) + payload


ram = Ram()
ram.put(0x1000, vsock_packet(1, 1234, 5000))               # REQUEST to a host port
ram.put(0x1100, vsock_packet(5, 1234, 5000, b"hello"))     # RW on it
ram.put(0x1200, vsock_packet(6, 1234, 5000))               # CREDIT_UPDATE
ram.put(0x1300, vsock_packet(4, 1234, 5000, flags=3))      # SHUTDOWN both ways
ram.put(0x1400, vsock_packet(3, 1234, 5000))               # RST
add_chains(ram, 0, [[(0x2000 + 0x100 * i, 0x100, WRITE)] for i in range(4)])
add_chains(ram, 1, [[(0x1000, 44, 0)], [(0x1100, 20, 0), (0x1100 + 20, 29, 0)], [(0x1200, 44, 0)],
                    [(0x1300, 44, 0)], [(0x1400, 44, 0)]])
add_chains(ram, 2, [[(0x2800, 8, WRITE)]])
seed("vsock", "connect-write-close", rig_input(VERSION_1 | 1 | EVENT_IDX, 3, ram))

# --- the virtqueue on its own ---

ram = Ram()
add_chains(ram, 0, [[(0x1000, 16, 0), (0x1100, 64, WRITE)], [(0x7FF0, 0x20, 0)]])
vq = struct.pack("<HQQQBH", QUEUE_SIZE, 0, 0x100, 0x200, 3, 0)
seed("virtqueue", "two-chains", vq + bytes(ram.b))
ram = Ram()
ram.put(0x1800, struct.pack("<QIHH", 0x10000, 64, 0, 1) + struct.pack("<QIHH", 0x10100, 64, WRITE, 0))
add_chains(ram, 0, [[(0x1800, 32, INDIRECT)]])
seed("virtqueue", "indirect-into-second-region", struct.pack("<HQQQBH", QUEUE_SIZE, 0, 0x100, 0x200, 7, 0) + bytes(ram.b))

# --- register sequences (fuzz-mmio) ---


def op(kind, offset, value):
    return struct.pack("<BHI", kind, offset, value)


def store(at, data):
    return b"".join(op(5, (at + i) // 4, struct.unpack("<I", data[i:i + 4].ljust(4, b"\0"))[0])
                    for i in range(0, len(data), 4))


setup = (op(0, 0, 0) + op(0, 4, 0) + op(2, 0, 1) + op(2, 0, 3) + op(1, 0x14, 1) + op(0, 0x10, 0)
         + op(1, 0x24, 1) + op(1, 0x20, 1) + op(1, 0x24, 0) + op(1, 0x20, 1 << 9) + op(2, 0, 11) + op(0, 0x70, 0)
         + op(1, 0x30, 0) + op(0, 0x34, 0) + op(1, 0x38, 8) + op(1, 0x80, 0) + op(1, 0x90, 0x100) + op(1, 0xA0, 0x200)
         + op(1, 0x44, 1) + op(2, 0, 15))
request = (store(0x1000, struct.pack("<IIQ", 0, 0, 0))
           + store(0, struct.pack("<QIHH", 0x1000, 16, NEXT, 1) + struct.pack("<QIHH", 0x1200, 512, NEXT | WRITE, 2)
                   + struct.pack("<QIHH", 0x1800, 1, WRITE, 0))
           + store(0x100, struct.pack("<HHH", 0, 1, 0)))
seed("mmio", "setup-read-notify", setup + request + op(3, 0, 0) + op(4, 0, 1) + op(4, 0, 1) + op(0, 0x60, 0)
     + op(1, 0x64, 1) + op(6, 0, 7) + op(8, 0, 0) + op(2, 0, 0))
seed("mmio", "config-and-reset", setup + op(6, 0, 3) + op(6, 0x14, 1) + op(7, 0, 3) + op(2, 0, 0) + op(2, 0, 0x80))

# --- host and agent parsers ---

seed("vsock-connect", "connect", "CONNECT 1024\n")
seed("vsock-connect", "connect-crlf-data", "CONNECT 4294967295\r\nhello")
seed("vsock-connect", "partial", "CONNECT 52")


# mmds: see Fuzz/Sources/fuzz-mmds (a step byte, then its fields).
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def tcp_step(port, flags, data=b"", ack_mode=1, mss=0, window=65535):
    return (bytes([1, port, flags, ack_mode]) + struct.pack("<I", 0) + bytes([0]) + struct.pack("<I", 0)
            + struct.pack("<H", window) + bytes([mss, len(data)]) + data)


def pull(n=255):
    return bytes([2, n])


def mmds_session(version, requests):
    out = bytes([version, 230]) + tcp_step(0, SYN, ack_mode=0, mss=182) + pull() + tcp_step(0, ACK)
    for r in requests:
        out += tcp_step(0, ACK | PSH, r.encode()) + pull() + tcp_step(0, ACK) + pull() + tcp_step(0, ACK) + pull()
    return out + tcp_step(0, FIN | ACK) + pull() + tcp_step(0, ACK)


seed("mmds", "v1-get", mmds_session(0, ["GET /a/b HTTP/1.1\r\n\r\n", "GET /a HTTP/1.1\r\nAccept: application/json\r\n\r\n",
                                        "GET /big HTTP/1.1\r\n\r\n"]))
seed("mmds", "v2-token", mmds_session(1, ["PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 5\r\n\r\n",
                                          "GET /a/b HTTP/1.1\r\nX-metadata-token: 00\r\n\r\n", "GET /n HTTP/1.0\r\n\r\n"]))
arp = (b"\xff" * 6 + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x06" + struct.pack(">HHBBH", 1, 0x800, 6, 4, 1)
       + bytes([2, 0, 0, 0, 0, 1]) + bytes([10, 0, 0, 2]) + bytes(6) + bytes([169, 254, 169, 254]))
seed("mmds", "arp", bytes([0, 0]) + bytes([0]) + struct.pack("<H", len(arp)) + bytes([0]) + arp + pull())

seed("api", "configure-session", "\0".join([
    'PUT /machine-config\n{"vcpu_count": 2, "mem_size_mib": 256, "smt": false}',
    'PATCH /machine-config\n{"mem_size_mib": 512}',
    'PUT /boot-source\n{"kernel_image_path": "/nonexistent/vmlinux", "boot_args": "console=ttyS0", "initrd_path": "/nonexistent/initrd"}',
    'PUT /drives/rootfs\n{"drive_id": "rootfs", "path_on_host": "/nonexistent/disk", "is_root_device": true, "is_read_only": true}',
    'PUT /network-interfaces/eth0\n{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "02:00:00:00:00:01"}',
    'PUT /vsock\n{"guest_cid": 3, "uds_path": "/nonexistent/v.sock"}',
    'PUT /entropy\n{}',
    'PUT /fs/shared\n{"fs_id": "shared", "tag": "kataShared", "socket": "/nonexistent/vfs.sock", "num_queues": 1, "queue_size": 1024}',
    'PUT /fs/shared\n{"fs_id": "shared", "tag": "kataShared", "socket": "/nonexistent/vfs2.sock"}',
    'GET /vm/config\n',
    'GET /machine-config\n',
    'GET /\n',
]))
seed("api", "refusals", "\0".join([
    'PATCH /vm\n{"state": "Paused"}',
    'PUT /actions\n{"action_type": "InstanceStart"}',
    'PUT /logger\n{"log_path": "/nonexistent/log", "level": "Debug", "show_level": true}',
    'PUT /metrics\n{"metrics_path": "/nonexistent/metrics"}',
    'PATCH /drives/rootfs\n{"drive_id": "rootfs", "path_on_host": "/x"}',
    'PUT /drives\n{}',
    'PUT /machine-config?x=1\n{"vcpu_count": 0, "mem_size_mib": 1}',
    'DELETE /version\n',
]))

seed("api", "rate-limiters", "\0".join([
    'PUT /drives/d0\n{"drive_id": "d0", "path_on_host": "/nonexistent/disk", "is_root_device": false, "rate_limiter": {"bandwidth": {"size": 1048576, "one_time_burst": 4096, "refill_time": 100}, "ops": {"size": 10, "refill_time": 1000}}}',
    'PUT /network-interfaces/eth0\n{"iface_id": "eth0", "host_dev_name": "tap0", "rx_rate_limiter": {"bandwidth": {"size": 0, "refill_time": 0}}, "tx_rate_limiter": {"ops": {"size": 18446744073709551615, "refill_time": 1}}}',
    'PUT /entropy\n{"rate_limiter": {"bandwidth": {"size": 1000, "one_time_burst": -1, "refill_time": 100}}}',
    'PATCH /network-interfaces/eth0\n{"iface_id": "eth0", "rx_rate_limiter": {"ops": null}}',
    'GET /vm/config\n',
]))

seed("config-file", "full", """{
  "boot-source": {"kernel_image_path": "/nonexistent/vmlinux", "boot_args": "console=ttyS0 reboot=k", "initrd_path": "/nonexistent/initrd"},
  "machine-config": {"vcpu_count": 3, "mem_size_mib": 48, "smt": false},
  "drives": [{"drive_id": "rootfs", "path_on_host": "/nonexistent/disk", "is_root_device": true, "is_read_only": true},
             {"drive_id": "data", "path_on_host": "/nonexistent/data", "is_root_device": false, "is_read_only": false}],
  "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "02:00:00:00:00:01"}],
  "vsock": {"guest_cid": 3, "uds_path": "/nonexistent/v.sock"},
  "fs": [{"fs_id": "shared", "tag": "kataShared", "socket": "/nonexistent/vfs.sock", "num_queues": 1, "queue_size": 512}],
  "entropy": {},
  "logger": {"log_path": "/nonexistent/log", "level": "Info"},
  "metrics": {"metrics_path": "/nonexistent/metrics"},
  "balloon": null
}
""")
seed("config-file", "rate-limiters", """{
  "boot-source": {"kernel_image_path": "/nonexistent/vmlinux"},
  "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "rx_rate_limiter": {"bandwidth": {"size": 125000, "refill_time": 1000}}, "tx_rate_limiter": {}}],
  "entropy": {"rate_limiter": {"ops": {"size": 5, "one_time_burst": 100, "refill_time": 1000000000000}}}
}
""")
seed("api", "balloon", "\0".join([
    'PUT /balloon\n{"amount_mib": 16, "deflate_on_oom": true, "stats_polling_interval_s": 1, "free_page_reporting": true}',
    'GET /balloon\n',
    'PATCH /balloon\n{"amount_mib": 4294967295}',
    'PATCH /balloon/statistics\n{"stats_polling_interval_s": 0}',
    'GET /balloon/statistics\n',
    'PATCH /balloon/hinting/start\n{}',
    'GET /vm/config\n',
]))
seed("api", "mmds", "\0".join([
    'PUT /network-interfaces/eth0\n{"iface_id": "eth0", "host_dev_name": "tap0"}',
    'PUT /mmds/config\n{"network_interfaces": ["eth0"], "version": "V2", "ipv4_address": "169.254.170.2", "imds_compat": true}',
    'PUT /mmds\n{"latest": {"meta-data": {"ami-id": "ami-1", "n": [1, 2, {"x": null}]}}}',
    'PATCH /mmds\n{"latest": {"meta-data": {"ami-id": null, "new": "v"}}}',
    'GET /mmds\n',
    'PUT /machine-config\n{"vcpu_count": 1, "mem_size_mib": 64, "track_dirty_pages": true}',
    'PUT /balloon\n{"amount_mib": 0, "deflate_on_oom": false, "free_page_hinting": true}',
    'GET /vm/config\n',
]))
seed("config-file", "balloon", '{"boot-source": {"kernel_image_path": "/k"}, "balloon": {"amount_mib": 8, "deflate_on_oom": false, "stats_polling_interval_s": 5}}')
seed("config-file", "minimal", '{"boot-source": {"kernel_image_path": "/k"}}')
seed("config-file", "mmds", '{"boot-source": {"kernel_image_path": "/k"}, "machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "track_dirty_pages": true}, '
     '"network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}], '
     '"mmds-config": {"network_interfaces": ["eth0"], "version": "V1", "ipv4_address": "169.254.169.254"}}')

spec = """{
  "ociVersion": "1.0.2",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0, "additionalGids": [1, 2]},
              "args": ["sh", "-c", "echo hi"], "env": ["PATH=/usr/bin:/bin", "TERM=xterm"], "cwd": "/",
              "consoleSize": {"height": 24, "width": 80},
              "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
              "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true},
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "fuzz",
  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
             {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=1777", "size=65536k"]}],
  "hooks": {"prestart": [{"path": "/bin/true", "args": ["true"], "env": ["A=1"], "timeout": 5}]},
  "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}],
            "resources": {"memory": {"limit": 268435456}, "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 64}}}
}
"""
seed("oci", "config", spec)
seed("oci", "pod-member", """{
  "ociVersion": "1.0.2",
  "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
  "root": {"path": "rootfs"},
  "annotations": {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "pod1",
                  "io.kubernetes.cri.sandbox-memory": "268435456", "io.kubernetes.cri.sandbox-cpu-quota": "150000",
                  "io.kubernetes.cri.sandbox-cpu-period": "100000"},
  "linux": {"namespaces": [{"type": "ipc", "path": "/proc/7/ns/ipc"}, {"type": "uts", "path": "/proc/7/ns/uts"}, {"type": "mount"}],
            "devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
            "sysctl": {"kernel.shmmax": "4096", "net.ipv4.ip_forward": "1"}}
}
""")
seed("oci", "process", '{"terminal": true, "user": {"uid": 1000, "gid": 1000}, "args": ["/bin/sh"], "cwd": "/home", "env": []}')
seed("oci", "resources", '{"memory": {"limit": 1048576}, "cpu": {"quota": -1, "period": 100000}, "pids": {"limit": 10}}')

with open(os.path.join(os.path.dirname(ROOT), "..", "docs", "configuration.toml.example")) as f:
    seed("toml", "example", f.read())
seed("toml", "small", '[hypervisor.kata]\npath = "/usr/bin/kata-vmm"\ndefault_vcpus = 2\ndefault_memory = 512\n'
     'kernel_params = "quiet"\n[agent.kata]\ndial_timeout = 30\n[runtime]\nenable_debug = true\n')


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, data):
    if isinstance(data, int):
        return varint(number << 3) + varint(data)
    data = data.encode() if isinstance(data, str) else data
    return varint(number << 3 | 2) + varint(len(data)) + data


def frame(stream, kind, payload):
    return struct.pack(">IIBB", len(payload), stream, kind, 0) + payload


def request(method, payload, service="grpc.AgentService"):
    return field(1, service) + field(2, method) + field(3, payload) + field(4, 5_000_000_000)


create = field(1, "c1") + field(2, "e1") + field(3, field(1, "/dev/vda") + field(2, "ext4") + field(4, "/run/c1")) \
    + field(4, '{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": "/run/c1"}}')
seed("ttrpc", "create-start-wait", frame(1, 1, request("CreateContainer", create))
     + frame(3, 1, request("StartContainer", field(1, "c1")))
     + frame(5, 1, request("WaitProcess", field(1, "c1") + field(2, "e1")))
     + frame(7, 1, request("Check", b"", service="grpc.Health")))
seed("ttrpc", "response-and-copy", frame(2, 2, field(1, field(1, 0) + field(2, "ok")) + field(2, field(1, 7)))
     + frame(9, 1, request("CopyFile", field(1, "/etc/hosts") + field(2, 5) + field(3, 0o644) + field(8, "127.0")))
     + frame(11, 1, request("UpdateInterface", field(1, field(1, "eth0") + field(3, field(1, "10.0.0.2") + field(2, "24"))))))


def elf64(segments, entry=0x1000000):
    """segments: (type, paddr, data, memsz)."""
    ph = 64 + 56 * len(segments)
    out = bytearray(b"\x7fELF\x02\x01\x01" + bytes(9))
    out += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, 64, 0, 0, 64, 56, len(segments), 0, 0, 0)
    offset = ph
    for kind, paddr, data, memsz in segments:
        out += struct.pack("<IIQQQQQQ", kind, 5, offset, paddr, paddr, len(data), memsz, 0x1000)
        offset += len(data)
    for _, _, data, _ in segments:
        out += data
    return bytes(out)


note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", 0x1000040)
seed("kernel", "elf64-pvh", elf64([(1, 0x1000000, b"\x90" * 64, 0x2000), (4, 0, note, len(note))]))
bz = bytearray(2 * 512 + 256)
bz[0x1F1] = 1
struct.pack_into("<H", bz, 0x1FE, 0xAA55)
bz[0x202:0x206] = b"HdrS"
struct.pack_into("<H", bz, 0x206, 0x020F)
bz[0x211] = 1  # LOADED_HIGH
struct.pack_into("<I", bz, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
struct.pack_into("<I", bz, 0x230, 0x200000)  # kernel_alignment
bz[0x234] = 1  # relocatable
struct.pack_into("<H", bz, 0x236, 1)  # xloadflags: XLF_KERNEL_64
struct.pack_into("<I", bz, 0x238, 2047)  # cmdline_size
struct.pack_into("<Q", bz, 0x258, 0x1000000)  # pref_address
struct.pack_into("<I", bz, 0x260, 0x100000)  # init_size
seed("kernel", "bzimage", bytes(bz))


# --- vhost-user: the backend's replies, in the order the frontend asks ---
def vu_reply(request, payload):
    return struct.pack("<III", request, 0x5, len(payload)) + payload  # version 1 | reply


def vu_u64(request, value):
    return vu_reply(request, struct.pack("<Q", value))


PROTOCOL_FEATURES, REPLY_ACK, MQ = 1 << 30, 1 << 3, 1 << 0
introduction = vu_u64(1, VERSION_1 | PROTOCOL_FEATURES) + vu_u64(15, REPLY_ACK | MQ) + vu_u64(17, 2)
acks = b"".join(vu_u64(r, 0) for r in [2, 5, 8, 10, 9, 12, 13, 14, 18])
seed("vhost-user", "well-behaved", introduction + acks + vu_reply(11, struct.pack("<II", 0, 7)))
seed("vhost-user", "no-protocol-features", vu_u64(1, VERSION_1) + vu_reply(11, struct.pack("<II", 0, 0)))
seed("vhost-user", "refuses-the-memory-table", introduction + vu_u64(2, 0) + vu_u64(5, 1))
