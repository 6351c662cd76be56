"""Back-end cost of an older checkout against this tree, interleaved runs on block seeds (CPU process time).

    git archive b33d682 | tar -x -C /tmp/old
    python benchmarks/backend_cost_ab.py 1,2,3 1 /tmp/old
"""
import subprocess, sys, json, os
seeds = sys.argv[1].split(","); reps = int(sys.argv[2]); before = sys.argv[3]
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
code = r'''
import sys, json; sys.path.insert(0, "benchmarks")
import torch; torch.set_num_threads(1)
import loop_closure as lc
from mono_metric.datasets.synthetic import SyntheticSequence
from mono_metric.eval.trajectory import ate
seq = lc.Rendered(SyntheticSequence(f"synthetic:{lc.SPECS['block'][0]}&seed=%s"))
odo, _, cpu = lc.run_odometry(seq, "block", True)
st = odo.backend.stats
print(json.dumps({"backend": st["cpu_s"], "tracking": cpu - st["cpu_s"], "closures": st["closures"], "ate": ate(seq.gt, odo.trajectory()).rmse_m}))
'''
for rep in range(reps):
    for seed in seeds:
        for name, root in (("before", before), ("after", here)):
            env = dict(os.environ, PYTHONPATH=root)
            out = subprocess.run([sys.executable, "-c", code % seed], cwd=root, env=env, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"seed {seed} rep {rep} {name:15s} tracking {r['tracking']:.2f} s back-end {r['backend']:.2f} s "
                  f"share {100*r['backend']/r['tracking']:.0f} % closures {r['closures']} ATE {r['ate']:.3f}", flush=True)
