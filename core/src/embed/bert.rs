//! A BERT encoder forward pass for sentence embedding, written for small inputs.
//!
//! Candle's generic model spends most of a short text's time outside arithmetic: dozens of
//! tensor ops per layer, each allocating and synchronising threads, and matrix products
//! whose weights (stored `out × in`) are gathered element by element into the matmul's
//! panels on every call. Here the weights are transposed once at load time (so the matmul
//! streams them as they are), the three attention projections are one product, everything
//! between the products is a plain loop over `f32` rows, and texts are never padded: the
//! projections run over the tokens of all texts stacked, attention over each text alone.
//! Candle still does the matrix products, the loading and the dtype conversion.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

type Result<T> = candle_core::Result<T>;

/// The fields of a BERT model's `config.json` (Hugging Face's names) the encoder uses.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: HiddenAct,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Only learned absolute positions are implemented (what BERT checkpoints use).
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// The prefix of the checkpoint's tensor names, when it has one (`bert.`, ...).
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

/// The activation of the feed-forward layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum HiddenAct {
    /// GELU with the exact `erf` (BERT's `gelu`).
    #[serde(rename = "gelu")]
    Gelu,
    /// GELU's tanh approximation.
    #[serde(
        rename = "gelu_new",
        alias = "gelu_pytorch_tanh",
        alias = "geluapproximate"
    )]
    GeluApproximate,
    #[serde(rename = "relu")]
    Relu,
}

/// A linear layer `y = x · Wᵀ + b`.
///
/// The weight is kept transposed and cut into blocks of [`BLOCK`] outputs (`blocks × in ×
/// BLOCK`, contiguous): the matmul then reads each block's columns one after the other, a
/// stream the prefetcher follows, where a plain transposed weight (`in × out`) would be read
/// a few cache lines per row, thousands of rows apart, for every block of outputs.
struct Linear {
    blocks: Tensor,
    bias: Vec<f32>,
}

/// The outputs of one weight block (a multiple of the matmul's 16-row micro-panels; 64 was
/// the fastest of 16 to 128 for short texts).
const BLOCK: usize = 64;

/// A layer normalisation's scale and shift.
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// One encoder layer.
struct Layer {
    /// Query, key and value projections as one (`hidden × 3·hidden`).
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The weights of a BERT encoder, ready for [`BertEncoder::embed`].
pub(super) struct BertEncoder {
    hidden: usize,
    heads: usize,
    eps: f32,
    act: HiddenAct,
    vocab: usize,
    max_positions: usize,
    word_embeddings: Vec<f32>,
    position_embeddings: Vec<f32>,
    /// Token type 0's embedding (every token has type 0).
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// Finds the tensors of a checkpoint under its prefix (none, `bert.`, or the model type).
struct Weights<'a> {
    tensors: &'a HashMap<String, Tensor>,
    prefix: String,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let tensor = self
            .tensors
            .get(&full)
            .ok_or_else(|| candle_core::Error::Msg(format!("tensor {full} not found")))?;
        if tensor.dims() != shape {
            return Err(candle_core::Error::Msg(format!(
                "tensor {full} has shape {:?}, expected {shape:?}",
                tensor.dims()
            )));
        }
        tensor.to_dtype(DType::F32)
    }

    fn vec(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.get(name, shape)?.flatten_all()?.to_vec1()
    }

    fn linear(&self, name: &str, inputs: usize, outputs: usize) -> Result<(Tensor, Vec<f32>)> {
        let weight = self.get(&format!("{name}.weight"), &[outputs, inputs])?;
        let bias = self.vec(&format!("{name}.bias"), &[outputs])?;
        Ok((weight, bias))
    }

    fn norm(&self, name: &str, size: usize) -> Result<Norm> {
        // Old PyTorch checkpoints name them gamma and beta.
        let pick = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find(|n| {
                    self.tensors
                        .contains_key(&format!("{}{name}.{n}", self.prefix))
                })
                .unwrap_or(names[0])
        };
        Ok(Norm {
            weight: self.vec(&format!("{name}.{}", pick(["weight", "gamma"])), &[size])?,
            bias: self.vec(&format!("{name}.{}", pick(["bias", "beta"])), &[size])?,
        })
    }
}

/// A [`Linear`] from a weight (`out × in`) and a bias.
fn linear((weight, bias): (Tensor, Vec<f32>)) -> Result<Linear> {
    let (outputs, inputs) = weight.dims2()?;
    let block = if outputs % BLOCK == 0 { BLOCK } else { outputs };
    let blocks = weight
        .reshape((outputs / block, block, inputs))?
        .transpose(1, 2)?
        .contiguous()?;
    Ok(Linear { blocks, bias })
}

impl BertEncoder {
    /// Loads the encoder from a safetensors buffer (any float dtype; computed in f32).
    pub(super) fn load(bytes: &[u8], config: &Config) -> Result<Self> {
        if let Some(other) = config
            .position_embedding_type
            .as_deref()
            .filter(|t| *t != "absolute")
        {
            return Err(candle_core::Error::Msg(format!(
                "position_embedding_type {other:?} is not supported (only \"absolute\")"
            )));
        }
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let prefix = ["", "bert."]
            .into_iter()
            .map(str::to_string)
            .chain(config.model_type.iter().map(|t| format!("{t}.")))
            .find(|p| tensors.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| {
                candle_core::Error::Msg("no embeddings.word_embeddings.weight tensor".into())
            })?;
        let w = Weights {
            tensors: &tensors,
            prefix,
        };
        let h = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || h % heads != 0 {
            return Err(candle_core::Error::Msg(format!(
                "hidden_size {h} is not a multiple of num_attention_heads {heads}"
            )));
        }
        let inter = config.intermediate_size;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let name = |n: &str| format!("encoder.layer.{i}.{n}");
                let (q, qb) = w.linear(&name("attention.self.query"), h, h)?;
                let (k, kb) = w.linear(&name("attention.self.key"), h, h)?;
                let (v, vb) = w.linear(&name("attention.self.value"), h, h)?;
                Ok(Layer {
                    qkv: linear((Tensor::cat(&[q, k, v], 0)?, [qb, kb, vb].concat()))?,
                    attention_out: linear(w.linear(&name("attention.output.dense"), h, h)?)?,
                    attention_norm: w.norm(&name("attention.output.LayerNorm"), h)?,
                    intermediate: linear(w.linear(&name("intermediate.dense"), h, inter)?)?,
                    output: linear(w.linear(&name("output.dense"), inter, h)?)?,
                    output_norm: w.norm(&name("output.LayerNorm"), h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let token_types = w.vec(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        Ok(BertEncoder {
            hidden: h,
            heads,
            eps: config.layer_norm_eps as f32,
            act: config.hidden_act,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            word_embeddings: w.vec("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position_embeddings: w.vec(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, h],
            )?,
            token_type: token_types.get(..h).map(<[f32]>::to_vec).ok_or_else(|| {
                candle_core::Error::Msg("the model has no token type embeddings".into())
            })?,
            embedding_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
        })
    }

    /// The mean-pooled, L2-normalised embedding of each text (given as token ids, special
    /// tokens included).
    pub(super) fn embed(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let total: usize = texts.iter().map(|t| t.len()).sum();
        let mut x = vec![0f32; total * h];
        let mut rows = x.chunks_exact_mut(h);
        for ids in texts {
            if ids.len() > self.max_positions {
                return Err(candle_core::Error::Msg(format!(
                    "{} tokens exceed the model's {} positions",
                    ids.len(),
                    self.max_positions
                )));
            }
            for (pos, (&id, row)) in ids.iter().zip(&mut rows).enumerate() {
                let id = id as usize;
                if id >= self.vocab {
                    return Err(candle_core::Error::Msg(format!(
                        "token id {id} is outside the vocabulary of {}",
                        self.vocab
                    )));
                }
                let word = &self.word_embeddings[id * h..(id + 1) * h];
                let position = &self.position_embeddings[pos * h..(pos + 1) * h];
                for (((out, w), p), t) in
                    row.iter_mut().zip(word).zip(position).zip(&self.token_type)
                {
                    *out = w + p + t;
                }
                layer_norm(row, &self.embedding_norm, self.eps);
            }
        }

        let lengths: Vec<usize> = texts.iter().map(|t| t.len()).collect();
        let mut context = vec![0f32; total * h];
        for layer in &self.layers {
            let qkv = matmul(&x, total, &layer.qkv)?;
            attention(&qkv, &lengths, h, self.heads, &mut context);
            let mut attended = matmul(&context, total, &layer.attention_out)?;
            add_norm(&mut attended, &x, &layer.attention_norm, self.eps);
            let mut inner = matmul(&attended, total, &layer.intermediate)?;
            activate(&mut inner, self.act);
            x = matmul(&inner, total, &layer.output)?;
            add_norm(&mut x, &attended, &layer.output_norm, self.eps);
        }

        // Mean pooling over each text's tokens, then L2 normalisation.
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        for &len in &lengths {
            let mut mean = vec![0f32; h];
            for row in x[start * h..(start + len) * h].chunks_exact(h) {
                mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            }
            start += len;
            let count = (len as f32).max(1e-9);
            mean.iter_mut().for_each(|m| *m /= count);
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|m| *m /= norm);
            out.push(mean);
        }
        Ok(out)
    }
}

/// `x · Wᵀ + b` for `rows` rows of `x`.
fn matmul(x: &[f32], rows: usize, linear: &Linear) -> Result<Vec<f32>> {
    let (blocks, inputs, block) = linear.blocks.dims3()?;
    let x = Tensor::from_slice(x, (1, rows, inputs), &Device::Cpu)?;
    // One product per block (`blocks × rows × block`), the input shared by all.
    let by_block: Vec<f32> = x
        .broadcast_as((blocks, rows, inputs))?
        .matmul(&linear.blocks)?
        .flatten_all()?
        .to_vec1()?;
    let outputs = blocks * block;
    let mut y = vec![0f32; rows * outputs];
    for (b, part) in by_block.chunks_exact(rows * block).enumerate() {
        let bias = &linear.bias[b * block..(b + 1) * block];
        for (row, src) in part.chunks_exact(block).enumerate() {
            let dst = &mut y[row * outputs + b * block..row * outputs + (b + 1) * block];
            for ((d, s), b) in dst.iter_mut().zip(src).zip(bias) {
                *d = s + b;
            }
        }
    }
    Ok(y)
}

/// `x = LayerNorm(x + residual)`, row by row.
fn add_norm(x: &mut [f32], residual: &[f32], norm: &Norm, eps: f32) {
    let h = norm.weight.len();
    for (row, res) in x.chunks_exact_mut(h).zip(residual.chunks_exact(h)) {
        row.iter_mut().zip(res).for_each(|(v, r)| *v += r);
        layer_norm(row, norm, eps);
    }
}

fn layer_norm(row: &mut [f32], norm: &Norm, eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let scale = 1.0 / (var + eps).sqrt();
    for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
        *v = (*v - mean) * scale * w + b;
    }
}

/// Multi-head self-attention of each text over its own tokens: `qkv` holds each token's
/// query, key and value (`3·hidden` per row); the heads' outputs go to `context`.
fn attention(qkv: &[f32], lengths: &[usize], hidden: usize, heads: usize, context: &mut [f32]) {
    let d = hidden / heads;
    let stride = 3 * hidden;
    let scale = 1.0 / (d as f32).sqrt();
    let mut scores = Vec::new();
    let mut start = 0;
    for &len in lengths {
        let tokens = &qkv[start * stride..(start + len) * stride];
        let out = &mut context[start * hidden..(start + len) * hidden];
        start += len;
        scores.resize(len, 0f32);
        for head in 0..heads {
            let (q_at, k_at, v_at) = (head * d, hidden + head * d, 2 * hidden + head * d);
            for i in 0..len {
                let q = &tokens[i * stride + q_at..i * stride + q_at + d];
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = dot(q, &tokens[j * stride + k_at..j * stride + k_at + d]) * scale;
                }
                softmax(&mut scores);
                let o = &mut out[i * hidden + head * d..i * hidden + (head + 1) * d];
                o.fill(0.0);
                for (j, &p) in scores.iter().enumerate() {
                    let v = &tokens[j * stride + v_at..j * stride + v_at + d];
                    o.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
                }
            }
        }
    }
}

/// A dot product with eight independent sums, so the compiler can use vector registers.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    v.iter_mut().for_each(|x| *x *= inv);
}

fn activate(v: &mut [f32], act: HiddenAct) {
    match act {
        HiddenAct::Gelu => v.iter_mut().for_each(|x| *x = gelu_erf(*x)),
        HiddenAct::GeluApproximate => v.iter_mut().for_each(|x| *x = gelu_tanh(*x)),
        HiddenAct::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
    }
}

/// `e^x` for `f32`, within a few ulp, written without branches or calls so that loops over
/// it vectorise (the C library's `expf` does not).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Taylor series of e^r on |r| ≤ ln2/2.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `erf(x)` with an absolute error below 2e-7 (Abramowitz and Stegun 7.1.26).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// GELU as BERT defines it: `x · Φ(x)`.
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's tanh approximation (`gelu_new`).
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // √(2/π)
    let y = C * (x + 0.044_715 * x * x * x);
    // tanh(y) = 1 - 2 / (e^{2y} + 1)
    0.5 * x * (2.0 - 2.0 / (exp(2.0 * y) + 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series, in f64 (converges quickly for |x| ≤ 4).
    fn erf_series(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn fast_functions_are_accurate() {
        let (mut exp_err, mut erf_err, mut tanh_err) = (0f64, 0f64, 0f64);
        for i in -400..=400 {
            let x = i as f32 / 100.0;
            let want = f64::from(x * 20.0).exp();
            exp_err = exp_err.max(((f64::from(exp(x * 20.0)) - want) / want).abs());
            erf_err = erf_err.max((f64::from(erf(x)) - erf_series(f64::from(x))).abs());
            let y = 0.797_884_560_802_865_4 * (f64::from(x) + 0.044_715 * f64::from(x).powi(3));
            let want = 0.5 * f64::from(x) * (1.0 + y.tanh());
            tanh_err = tanh_err.max((f64::from(gelu_tanh(x)) - want).abs());
        }
        assert!(exp_err < 1e-6, "exp: relative error {exp_err}");
        assert!(erf_err < 5e-7, "erf: error {erf_err}");
        assert!(tanh_err < 1e-6, "gelu_tanh: error {tanh_err}");
        assert_eq!(exp(-1000.0), exp(-87.0));
    }

    #[test]
    fn configs_read_the_fields_bert_checkpoints_use() {
        let base = serde_json::json!({
            "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
            "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu",
            "max_position_embeddings": 512, "model_type": "bert", "pad_token_id": 0
        });
        let config: Config = serde_json::from_value(base.clone()).unwrap();
        assert_eq!(config.hidden_act, HiddenAct::Gelu);
        assert_eq!((config.type_vocab_size, config.layer_norm_eps), (2, 1e-12));
        for (name, act) in [
            ("gelu_new", HiddenAct::GeluApproximate),
            ("gelu_pytorch_tanh", HiddenAct::GeluApproximate),
            ("relu", HiddenAct::Relu),
        ] {
            let mut v = base.clone();
            v["hidden_act"] = name.into();
            assert_eq!(serde_json::from_value::<Config>(v).unwrap().hidden_act, act);
        }
        let mut v = base.clone();
        v["hidden_act"] = "swish".into();
        assert!(serde_json::from_value::<Config>(v).is_err());
        // Weights are checked only after the configuration: no tensors are needed here.
        let mut v = base;
        v["position_embedding_type"] = "relative_key".into();
        let config: Config = serde_json::from_value(v).unwrap();
        let err = BertEncoder::load(b"", &config).err().expect("refused");
        assert!(err.to_string().contains("relative_key"), "{err}");
    }

    #[test]
    fn dot_and_softmax() {
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..19).map(|i| (i * i) as f32).sum::<f32>());
        let mut v = vec![1.0, 2.0, 3.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[2] > v[1] && v[1] > v[0]);
    }
}
