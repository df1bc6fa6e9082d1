import os, sys, time, torch
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pyterrier_hybrid.training.config import HybridTrainingConfig
from pyterrier_hybrid.training.trainer import prepare_training
ct = sys.argv[1] if len(sys.argv) > 1 else "sentence"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 4
cfg = HybridTrainingConfig(batch_size=32, max_seq_length=128, bf16=True, freeze_word_embeddings=True, candidate_text=ct,
    eval_fraction=0.0, max_steps=steps, save_steps=10**6, logging_steps=1, output_dir="/tmp/h13/prof_out", seed=1, max_memory_gb=12.0)
import shutil; shutil.rmtree("/tmp/h13/prof_out", ignore_errors=True)
p = prepare_training(cfg)
tr = p.trainer
m = tr.model
print("attn impl", m[0].auto_model.config._attn_implementation, "threads", torch.get_num_threads())
from transformers import TrainerCallback
times=[]
class C(TrainerCallback):
    def on_step_end(self,*a,**k): times.append(time.perf_counter())
tr.add_callback(C())
# wrap loss forward to record token counts
loss = tr.loss if not isinstance(tr.loss, dict) else None
orig = tr.compute_loss
toks=[]
def cl(model, inputs, *a, **k):
    toks.append({k2: tuple(v.shape) for k2, v in inputs.items() if hasattr(v, "shape")})
    return orig(model, inputs, *a, **k)
tr.compute_loss = cl
from torch.profiler import profile, ProfilerActivity
prof = profile(activities=[ProfilerActivity.CPU], record_shapes=False, schedule=torch.profiler.schedule(wait=1, warmup=0, active=2, repeat=1))
class P(TrainerCallback):
    def on_step_end(self,*a,**k): prof.step()
tr.add_callback(P())
prof.start()
tr.train()
prof.stop()
print("step times", [round(b-a,2) for a,b in zip(times, times[1:])])
print(toks[:3])
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=35))
