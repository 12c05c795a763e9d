#!/usr/bin/env python3
"""tools/torch_reference.py: an independent PyTorch implementation of the rlc model, used to produce the
fixture that tests/test_torch_ref.c checks the C engine against.

The model (written here in plain torch, no transformers library) is the decoder-only Llama / Qwen2
transformer as rlc runs it on a token-packed batch:
    x = embed_tokens[tokens]                                             (T, C)
    per layer:
        h = rmsnorm(x) * input_layernorm.weight
        q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)               (T, NH|NKV, HD)
        q, k = rope(q), rope(k)   rotate-half, freq_i = theta^(-2i/HD), positions restart in each sequence
        att = softmax(q k^T / sqrt(HD)) v, causal and only inside the token's own sequence;
              query head h reads kv head h // (NH / NKV) (GQA)
        x = x + att Wo^T
        h = rmsnorm(x) * post_attention_layernorm.weight
        x = x + down(silu(gate(h)) * up(h))
    logits = rmsnorm(x) * norm.weight @ lm_head^T                       (T, V)
The loss is the SFT token mean L = -sum_{t: target_t >= 0} log softmax(logits_t)[target_t] / n_valid.

Running the script (torch, numpy, safetensors needed) writes into tests/fixtures/torch_ref/:
    config.json          HF config of a small random model (Qwen2 style: q/k/v biases, untied LM head)
    model.safetensors    its weights under HF names (F32)
    expected.safetensors "tokens", "targets", "cu_seqlens" (I32), "logits" (T,V), "loss" [1] and
                         "grad.<name>" of every parameter (F32), computed in float64 from the F32 weights.
CI only runs the C test on the committed fixture; rerun this script only to regenerate it.
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "tests", "fixtures", "torch_ref")

CFG = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",  # rlc reads q/k/v biases from model_type qwen2
    "vocab_size": 37,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "intermediate_size": 48,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
    "max_position_embeddings": 64,
    "hidden_act": "silu",
    "torch_dtype": "float32",
}
SEQ_LENS = [7, 1, 12]


def param_shapes(cfg):
    """HF name -> shape, in the order of the model's parameter table."""
    V, C, F = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    NH, NKV, HD = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    bias = cfg["model_type"] == "qwen2"
    s = {"model.embed_tokens.weight": (V, C)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        s[p + "input_layernorm.weight"] = (C,)
        s[p + "self_attn.q_proj.weight"] = (NH * HD, C)
        s[p + "self_attn.k_proj.weight"] = (NKV * HD, C)
        s[p + "self_attn.v_proj.weight"] = (NKV * HD, C)
        if bias:
            s[p + "self_attn.q_proj.bias"] = (NH * HD,)
            s[p + "self_attn.k_proj.bias"] = (NKV * HD,)
            s[p + "self_attn.v_proj.bias"] = (NKV * HD,)
        s[p + "self_attn.o_proj.weight"] = (C, NH * HD)
        s[p + "post_attention_layernorm.weight"] = (C,)
        s[p + "mlp.gate_proj.weight"] = (F, C)
        s[p + "mlp.up_proj.weight"] = (F, C)
        s[p + "mlp.down_proj.weight"] = (C, F)
    s["model.norm.weight"] = (C,)
    if not cfg.get("tie_word_embeddings", False):
        s["lm_head.weight"] = (V, C)
    return s


def random_params(cfg, gen):
    """Non-trivial random weights: matrices ~ N(0, 1/fan_in) (embedding N(0,1)) so activations stay O(1) and
    attention is far from uniform; norm weights 1 + N(0, 0.2); biases N(0, 0.3). Rounded to float32, since
    that is what the checkpoint stores and the C model loads."""
    out = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            t = 1.0 + 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name.endswith(".bias"):
            t = 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name == "model.embed_tokens.weight":
            t = torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            # q/k get a larger scale so the softmax is peaked and the causal mask / RoPE matter a lot
            scale = 2.0 if ("q_proj" in name or "k_proj" in name) else 1.0
            t = scale * torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[1])
        out[name] = t.to(torch.float32)
    return out


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, pos, theta):
    """Rotate-half RoPE on (T, H, HD): pairs (i, i + HD/2), angle pos * theta^(-2i/HD)."""
    HD = x.shape[-1]
    half = HD // 2
    i = torch.arange(half, dtype=torch.float64)
    inv_freq = theta ** (-2.0 * i / HD)                           # (HD/2)
    ang = pos.to(torch.float64)[:, None] * inv_freq[None, :]      # (T, HD/2)
    cos = torch.cos(ang).to(x.dtype)[:, None, :]                  # (T, 1, HD/2)
    sin = torch.sin(ang).to(x.dtype)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def positions_and_mask(cu_seqlens):
    """Positions restart at 0 in each packed sequence; token i may attend to j iff same sequence and j <= i."""
    T = int(cu_seqlens[-1])
    pos = torch.empty(T, dtype=torch.long)
    seq = torch.empty(T, dtype=torch.long)
    for b in range(len(cu_seqlens) - 1):
        a, e = int(cu_seqlens[b]), int(cu_seqlens[b + 1])
        pos[a:e] = torch.arange(e - a)
        seq[a:e] = b
    idx = torch.arange(T)
    allowed = (seq[:, None] == seq[None, :]) & (idx[None, :] <= idx[:, None])  # (T, T)
    return pos, allowed


def forward(params, cfg, tokens, cu_seqlens):
    """Logits (T, V) of the packed batch, in the dtype of params."""
    C, NH, NKV, HD = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                      cfg["head_dim"])
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    T = tokens.shape[0]
    pos, allowed = positions_and_mask(cu_seqlens)
    x = params["model.embed_tokens.weight"][tokens]               # (T, C)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rmsnorm(x, params[p + "input_layernorm.weight"], eps)
        q = h @ params[p + "self_attn.q_proj.weight"].T
        k = h @ params[p + "self_attn.k_proj.weight"].T
        v = h @ params[p + "self_attn.v_proj.weight"].T
        if p + "self_attn.q_proj.bias" in params:
            q = q + params[p + "self_attn.q_proj.bias"]
            k = k + params[p + "self_attn.k_proj.bias"]
            v = v + params[p + "self_attn.v_proj.bias"]
        q = rope(q.view(T, NH, HD), pos, theta)                   # (T, NH, HD)
        k = rope(k.view(T, NKV, HD), pos, theta)                  # (T, NKV, HD)
        v = v.view(T, NKV, HD)
        kv_of_q = torch.arange(NH) // (NH // NKV)                 # GQA: query head h -> kv head h // (NH/NKV)
        kq, vq = k[:, kv_of_q, :], v[:, kv_of_q, :]               # (T, NH, HD)
        s = torch.einsum("thd,shd->hts", q, kq) / math.sqrt(HD)   # (NH, T, T)
        s = s.masked_fill(~allowed[None], float("-inf"))
        att = torch.einsum("hts,shd->thd", torch.softmax(s, dim=-1), vq).reshape(T, NH * HD)
        x = x + att @ params[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, params[p + "post_attention_layernorm.weight"], eps)
        g = h @ params[p + "mlp.gate_proj.weight"].T
        u = h @ params[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ params[p + "mlp.down_proj.weight"].T
    h = rmsnorm(x, params["model.norm.weight"], eps)
    head = params.get("lm_head.weight", params["model.embed_tokens.weight"])
    return h @ head.T


def sft_loss(logits, targets):
    """Token mean of -log p(target) over targets >= 0."""
    valid = targets >= 0
    logp = torch.log_softmax(logits, dim=-1)
    lp = logp[torch.arange(logits.shape[0]), targets.clamp(min=0)]
    return -(lp * valid).sum() / valid.sum()


def run(params32, cfg, tokens, targets, cu_seqlens, dtype):
    params = {k: v.to(dtype).clone().requires_grad_(True) for k, v in params32.items()}
    logits = forward(params, cfg, tokens, cu_seqlens)
    loss = sft_loss(logits, targets)
    loss.backward()
    return logits.detach(), loss.detach(), {k: v.grad.detach() for k, v in params.items()}


def main():
    gen = torch.Generator().manual_seed(20240607)
    params32 = random_params(CFG, gen)
    cu = [0]
    for n in SEQ_LENS:
        cu.append(cu[-1] + n)
    cu_seqlens = torch.tensor(cu, dtype=torch.int32)
    T, V = cu[-1], CFG["vocab_size"]
    tokens = torch.randint(0, V, (T,), generator=gen, dtype=torch.long)
    # targets: the next token inside each sequence (random for the last one, as a response token would be),
    # with a few ignored (-1): the first token of the long sequence (a prompt token) and two more.
    targets = torch.randint(0, V, (T,), generator=gen, dtype=torch.long)
    for b in range(len(SEQ_LENS)):
        for t in range(cu[b], cu[b + 1] - 1):
            targets[t] = tokens[t + 1]
    for t in (1, cu[2], cu[2] + 4):
        targets[t] = -1

    logits, loss, grads = run(params32, CFG, tokens, targets, cu_seqlens, torch.float64)
    l32, loss32, g32 = run(params32, CFG, tokens, targets, cu_seqlens, torch.float32)

    def rel(a, b):
        return (a.double() - b).abs().max().item() / max(b.abs().max().item(), 1e-30)

    print(f"T={T} V={V} n_valid={(targets >= 0).sum().item()} loss(f64)={loss.item():.10f}")
    print(f"float32 vs float64: logits max-rel {rel(l32, logits):.3g}, loss rel "
          f"{abs(loss32.item() - loss.item()) / abs(loss.item()):.3g}, worst grad max-rel "
          f"{max(rel(g32[k], grads[k]) for k in grads):.3g}")
    print(f"max|logit| {logits.abs().max().item():.3g}")

    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
        f.write("\n")
    save_file({k: v.contiguous() for k, v in params32.items()}, os.path.join(OUT_DIR, "model.safetensors"))
    exp = {
        "tokens": tokens.to(torch.int32),
        "targets": targets.to(torch.int32),
        "cu_seqlens": cu_seqlens,
        "logits": logits.to(torch.float32).contiguous(),
        "loss": loss.reshape(1).to(torch.float32),
    }
    for k, g in grads.items():
        exp["grad." + k] = g.to(torch.float32).contiguous()
    save_file(exp, os.path.join(OUT_DIR, "expected.safetensors"),
              metadata={"generator": "tools/torch_reference.py", "torch": torch.__version__})
    print("wrote", os.path.normpath(OUT_DIR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
