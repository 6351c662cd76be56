"""Embedded depth model time per frame at a given torch thread count (why ``--threads`` defaults to 1 on
<= 2 cores). Run it per count: ``python benchmarks/threads_speed.py 1; python benchmarks/threads_speed.py 2``
(without OMP_NUM_THREADS set); prints wall and CPU ms per frame and the load average."""
import sys, time, torch, numpy as np
from mono_metric.depth import Metric3D
from mono_metric import load_sequence
n = int(sys.argv[1]); torch.set_num_threads(n)
f = load_sequence("synthetic:street?seed=1&frames=1")[0]
m = Metric3D.from_pretrained("mono_metric_tiny")
m.predict(f.image, f.camera)
w0, c0 = time.perf_counter(), time.process_time()
for _ in range(5):
    m.predict(f.image, f.camera)
print(f"threads {n}: {(time.perf_counter()-w0)/5*1000:.0f} ms wall, {(time.process_time()-c0)/5*1000:.0f} ms CPU per frame; load {open('/proc/loadavg').read().split()[0]}")
