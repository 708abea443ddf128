//! Embedding graphc: compile a spec written inline, step it batch by batch,
//! and read the loss and the parameters by name. Run with
//! `cargo run -p graphc --example embed`.

use graphc::{BackendKind, BatchTargets};

const SPEC: &str = "
data: {train: {csv: unused.csv, target: y}, batch_size: 4}
model:
  input: [1]
  layers: [{type: linear, out: 1}]
loss: {type: mse}
optimizer: {type: sgd, lr: 0.1}
train: {steps: 200}
";

/// Fits y = 3x - 1 and returns the learned (weight, bias) and the last loss.
pub fn fit_line() -> Result<(f32, f32, f32), Box<dyn std::error::Error>> {
    let spec = graphc::parse_str(SPEC, std::path::Path::new("inline.yaml"))?;
    let mut trainer = graphc::compile(&spec, BackendKind::Interp)?;
    let x = [-1.0f32, 0.0, 0.5, 2.0];
    let y = BatchTargets::Floats(x.iter().map(|v| 3.0 * v - 1.0).collect());
    let mut loss = f32::NAN;
    for _ in 0..200 {
        loss = trainer.step(&x, &y)?;
    }
    let weight = trainer.param("0.weight").ok_or("no weight")?[0];
    let bias = trainer.param("0.bias").ok_or("no bias")?[0];
    Ok((weight, bias, loss))
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (weight, bias, loss) = fit_line()?;
    println!("learned y = {weight:.3} x + {bias:.3} (loss {loss:.2e})");
    Ok(())
}
