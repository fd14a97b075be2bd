#!/usr/bin/env python3
"""The display benchmark's driver: boots the same guest under each VMM,
drives the guest's workload over its serial console, connects the VNC
client with one encoding at a time, and reports bytes on the wire, frames
shown, the delay from the guest's write to the client's update, and the
VMM's CPU time per frame; then Nestbox/QEMU ratios. See bench-vnc.sh."""
import argparse
import json
import os
import queue
import select
import statistics
import subprocess
import sys
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")


def now_ns():
    return time.monotonic_ns()


class Vmm:
    """A VMM whose serial console is this process's pipe."""

    def __init__(self, name, argv, logdir):
        self.name = name
        self.log = open(os.path.join(logdir, f"{name}.console"), "wb")
        self.stderr = open(os.path.join(logdir, f"{name}.stderr"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, bufsize=0)
        self.lines = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        # Each line carries the time its first byte was read: the probe's
        # answer "Q ..." is timed from its 'Q'.
        fd = self.proc.stdout.fileno()
        pending, first = b"", None
        while True:
            chunk = os.read(fd, 65536)
            t = now_ns()
            if not chunk:
                self.lines.put((t, None))
                return
            self.log.write(chunk)
            self.log.flush()
            for byte in chunk.splitlines(keepends=True):
                if first is None:
                    first = t
                pending += byte
                if pending.endswith(b"\n"):
                    self.lines.put((first, pending.decode(errors="replace").strip("\r\n")))
                    pending, first = b"", None

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_line(self, prefix, timeout):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.name}: no '{prefix}' line from the guest in {timeout} s")
            try:
                t, line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.name}: the VMM stopped (exit {self.proc.wait()}) "
                                   f"while waiting for '{prefix}'")
            if "GUEST-VNCLOAD-ERROR" in line or "NESTBOX-TEST-EXIT" in line:
                raise RuntimeError(f"{self.name}: guest said: {line}")
            if line.startswith(prefix):
                return t, line

    def sync(self, probes=15):
        """Offset of the guest's clock from ours (guest - host, ns), from the
        probe with the shortest round trip; its error is at most half that
        round trip."""
        best = None
        for _ in range(probes):
            while not self.lines.empty():
                self.lines.get_nowait()
            t1 = now_ns()
            self.send("S")
            t2, line = self.wait_line("Q ", 10)
            guest = int(line.split()[1])
            rtt = t2 - t1
            if best is None or rtt < best[1]:
                best = (guest - (t1 + t2) // 2, rtt, (t1 + t2) // 2)
            time.sleep(0.02)
        return best

    def cpu(self):
        """CPU ticks of the VMM's threads: (vCPU threads, all others)."""
        vcpu = other = 0
        base = f"/proc/{self.proc.pid}/task"
        for tid in os.listdir(base):
            try:
                with open(f"{base}/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            ticks = int(fields[11]) + int(fields[12])
            # Nestbox names them vcpuN, QEMU (debug-threads=on) "CPU N/KVM".
            if comm.startswith("vcpu") or comm.endswith("/KVM"):
                vcpu += ticks
            else:
                other += ticks
        return vcpu, other

    def stop(self):
        try:
            self.send("quit\n")
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


class Client:
    def __init__(self, binary, port, encoding):
        self.proc = subprocess.Popen([binary, f"127.0.0.1:{port}", "--encoding", encoding],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.buf = b""

    def line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise RuntimeError("the VNC client said nothing in time")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"the VNC client ended (exit {self.proc.wait()})")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def wait(self, prefix, timeout):
        while True:
            line = self.line(timeout)
            if line.startswith(prefix):
                return line
            if line.startswith(("DISCONNECTED", "CONNECT-FAILED")):
                raise RuntimeError(f"VNC client: {line}")

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def phase(vmm, client_bin, port, workload, encoding, seconds, fps, log):
    vmm.send(f"prep {workload}\n")
    vmm.wait_line("PREPARED", 60)
    client = None
    if encoding != "none":
        client = Client(client_bin, port, encoding)
        client.wait("READY", 120)
    time.sleep(1.0)   # the first picture is sent and settled
    off1, rtt1, at1 = vmm.sync()
    cpu0 = vmm.cpu()
    if client:
        client.send("start\n")
        client.wait("STARTED", 30)
    t_start = now_ns()
    vmm.send(f"run {workload} {seconds} {fps}\n")
    _, done = vmm.wait_line("DONE", seconds * 4 + 120)
    time.sleep(0.5)   # the last frames reach the client
    result, frames = None, []
    if client:
        client.send("stop\n")
        result = fields(client.wait("RESULT", 60))
        while True:
            line = client.line(60)
            if line == "END":
                break
            _, k, guest_us, host_ns = line.split()
            frames.append((int(k), int(guest_us), int(host_ns)))
        client.proc.wait(timeout=30)
    cpu1 = vmm.cpu()
    t_end = now_ns()
    off2, rtt2, at2 = vmm.sync()
    d = fields(done)
    written = int(d["frames"])

    def offset_at(t):   # the clocks' offset, drawn straight between the probes
        return off1 + (off2 - off1) * (t - at1) / (at2 - at1) if at2 != at1 else off1

    delays = [(host - (gus * 1000 - offset_at(host))) / 1e6 for k, gus, host in frames if k > 0]
    r = {
        "vmm": vmm.name, "workload": workload, "encoding": encoding, "fps": fps,
        "seconds": seconds, "frames_written": written, "frames_late": int(d["late"]),
        "guest_write_us_median": int(d["write_us_median"]),
        "cpu_vcpu_ms": (cpu1[0] - cpu0[0]) * 1000 / HZ,
        "cpu_vmm_ms": (cpu1[1] - cpu0[1]) * 1000 / HZ,
        "window_s": (t_end - t_start) / 1e9,
        "sync_rtt_ms": max(rtt1, rtt2) / 1e6, "clock_drift_ms": (off2 - off1) / 1e6,
    }
    r["cpu_vmm_ms_per_frame"] = r["cpu_vmm_ms"] / max(written, 1)
    if result:
        b = int(result["bytes"])
        r.update({
            "bytes": b, "mbit_s": b * 8 / seconds / 1e6, "bytes_per_frame": b / max(written, 1),
            "updates": int(result["updates"]), "rects": int(result["rects"]),
            "frames_shown": len([f for f in frames if f[0] > 0]),
            "delay_ms_median": statistics.median(delays) if delays else float("nan"),
            "delay_ms_p90": pct(delays, 90), "delay_ms_max": max(delays) if delays else float("nan"),
            "delay_ms_min": min(delays) if delays else float("nan"),
        })
    log(json.dumps(r))
    return r


def describe(r):
    s = (f"{r['vmm']:8} {r['workload']:6} {r['encoding']:5} frames {r['frames_written']:4}"
         f" (late {r['frames_late']})  VMM CPU {r['cpu_vmm_ms_per_frame']:6.2f} ms/frame"
         f"  vCPU {r['cpu_vcpu_ms'] / max(r['frames_written'], 1):6.2f} ms/frame")
    if "bytes" in r:
        s += (f"  {r['mbit_s']:7.2f} Mbit/s  {r['bytes_per_frame'] / 1024:7.1f} KiB/frame"
              f"  shown {r['frames_shown']:4}  updates {r['updates']:4}"
              f"  delay median {r['delay_ms_median']:6.1f} p90 {r['delay_ms_p90']:6.1f}"
              f" max {r['delay_ms_max']:6.1f} ms (sync rtt {r['sync_rtt_ms']:.1f} ms)")
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nestbox", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--workloads", default="scroll:10,window:25")
    ap.add_argument("--encodings", default="none,tight,zrle,raw")
    ap.add_argument("--vmms", default="nestbox,qemu")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    logf = open(os.path.join(args.out, "results.jsonl"), "w")

    def log(text):
        logf.write(text + "\n")
        logf.flush()

    append = ("console=ttyS0 panic=-1 quiet loglevel=1 nestbox.modules=bochs video=1024x768")
    workloads = [(w.split(":")[0], int(w.split(":")[1])) for w in args.workloads.split(",")]
    encodings = args.encodings.split(",")
    results = []
    vmms = args.vmms.split(",")
    for i, spec in enumerate(vmms):
        display = 41 + i
        # NAME=PATH: another nestbox-vm binary (an earlier build, to compare
        # a change before and after in the same run).
        name, _, binary = spec.partition("=")
        if name != "qemu":
            argv = [binary or args.nestbox, "--kernel", args.kernel, "--initrd", args.initrd,
                    "--append", append, "--memory", "512M", "--cpus", "1", "--serial", "stdio",
                    "--vnc", f"127.0.0.1:{display}", "--no-reboot"]
        else:
            argv = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-M", "q35",
                    "-m", "512M", "-smp", "1", "-nodefaults", "-no-user-config",
                    "-name", "nbbench,debug-threads=on", "-display", "none",
                    "-vnc", f"127.0.0.1:{display}", "-device", "bochs-display",
                    "-serial", "stdio", "-no-reboot",
                    "-kernel", args.kernel, "-initrd", args.initrd, "-append", append]
        started = time.monotonic()
        vmm = Vmm(name, argv, args.out)
        try:
            _, ready = vmm.wait_line("VNCLOAD-READY", 300)
            print(f"{name}: guest ready after {time.monotonic() - started:.0f} s: {ready}", flush=True)
            for workload, fps in workloads:
                for encoding in encodings:
                    r = phase(vmm, args.client, 5900 + display, workload, encoding,
                              args.seconds, fps, log)
                    results.append(r)
                    print(f"[{time.monotonic() - started:4.0f} s] " + describe(r), flush=True)
        except RuntimeError as e:
            print(f"{name}: FAILED: {e}", flush=True)
        finally:
            vmm.stop()
            print(f"{name}: stopped after {time.monotonic() - started:.0f} s", flush=True)

    by = {(r["vmm"], r["workload"], r["encoding"]): r for r in results}
    for nb in [v.partition("=")[0] for v in vmms if v != "qemu"]:
        table(by, nb, workloads, encodings)
    return 0 if len(results) == len(workloads) * len(encodings) * len(vmms) else 1


def table(by, nb, workloads, encodings):
    print()
    print(f"| workload | encoding | measure | {nb} | QEMU | {nb}/QEMU |")
    print("|---|---|---|---|---|---|")
    measures = [("mbit_s", "Mbit/s on the wire", "%.2f"),
                ("cpu_vmm_ms_per_frame", "VMM CPU ms/frame (not vCPU)", "%.2f"),
                ("delay_ms_median", "delay median ms", "%.1f"),
                ("delay_ms_p90", "delay p90 ms", "%.1f"),
                ("frames_shown", "frames shown", "%d")]
    for workload, fps in workloads:
        for encoding in encodings:
            n, q = by.get((nb, workload, encoding)), by.get(("qemu", workload, encoding))
            for key, label, fmt in measures:
                if not n or not q or key not in n or key not in q:
                    continue
                ratio = n[key] / q[key] if q[key] else float("nan")
                print(f"| {workload} {fps} fps | {encoding} | {label} | {fmt % n[key]} | "
                      f"{fmt % q[key]} | {ratio:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
