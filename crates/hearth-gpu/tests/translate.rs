//! Every WGSL shader the crate builds is valid WGSL and translates to Metal's MSL and DX12's
//! HLSL with naga (what wgpu does on a Mac and on Windows), so those backends' shader paths are
//! checked on Linux too.

use naga::back::{hlsl, msl};
use naga::valid::{Capabilities, ValidationFlags, Validator};

#[test]
fn every_shader_translates_to_msl_and_hlsl() {
    let mut failures = Vec::new();
    let sources = hearth_gpu::all_sources();
    assert!(sources.len() >= 40, "only {} shaders", sources.len());
    for (name, src) in &sources {
        let module = match naga::front::wgsl::parse_str(src) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: WGSL: {}", e.emit_to_string(src)));
                continue;
            }
        };
        let info =
            match Validator::new(ValidationFlags::all(), Capabilities::all()).validate(&module) {
                Ok(i) => i,
                Err(e) => {
                    failures.push(format!("{name}: validation: {e:?}"));
                    continue;
                }
            };
        let msl_opts = msl::Options {
            lang_version: (2, 4),
            ..Default::default()
        };
        let pipeline = msl::PipelineOptions::default();
        if let Err(e) = msl::write_string(&module, &info, &msl_opts, &pipeline) {
            failures.push(format!("{name}: MSL: {e}"));
        }
        let hlsl_opts = hlsl::Options {
            shader_model: hlsl::ShaderModel::V6_2,
            ..Default::default()
        };
        let mut out = String::new();
        let hlsl_pipeline = hlsl::PipelineOptions::default();
        let mut writer = hlsl::Writer::new(&mut out, &hlsl_opts, &hlsl_pipeline);
        if let Err(e) = writer.write(&module, &info, None) {
            failures.push(format!("{name}: HLSL: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
