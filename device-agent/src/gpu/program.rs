//! A lowered network made concrete: buffers assigned by liveness, weights uploaded, bind
//! groups and pipelines built. Running it records every dispatch into one compute pass of one
//! submission.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wgpu::util::DeviceExt;

use super::GpuError;
use super::context::Gpu;
use super::lower::{Binding, GATE_UNIFORM_BYTES, Lowered, TensorId, UNIFORM_WEIGHTS_BYTES};

/// Timings of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunTime {
    /// From queue submission until the device reported the work done.
    pub wall_ms: f64,
    /// Between the compute pass's beginning and end timestamps, when requested and available.
    pub gpu_ms: Option<f64>,
}

/// Facts about a prepared program, for the measurement record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgramInfo {
    /// Time spent building pipelines this program was the first to need.
    pub pipeline_ms: f64,
    pub dispatches: u32,
    /// Bytes of feature-map buffers after liveness-based reuse.
    pub activation_bytes: u64,
}

struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f64,
}

/// A network ready to run on the GPU: nothing is created while it runs.
pub struct Program {
    device: wgpu::Device,
    queue: wgpu::Queue,
    dispatches: Vec<Dispatch>,
    input: wgpu::Buffer,
    input_len: u64,
    output: wgpu::Buffer,
    output_len: u64,
    readback: wgpu::Buffer,
    timestamps: Option<Timestamps>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    info: ProgramInfo,
}

/// Buffers for tensors: a tensor gets a buffer nobody will read again, so a network's
/// feature maps cycle through a few buffers as a runtime's allocator would, and the input
/// keeps its own so repeated runs read the same data.
fn assign_buffers(l: &Lowered) -> (Vec<usize>, Vec<u64>) {
    let n = l.tensors.len();
    let mut last_use = vec![usize::MAX; n];
    let mut first_use = vec![usize::MAX; n];
    for (s, step) in l.steps.iter().enumerate() {
        for b in &step.bindings {
            if let Binding::Tensor(t) | Binding::TensorUniform(t) = b {
                last_use[*t] = s;
                if first_use[*t] == usize::MAX {
                    first_use[*t] = s;
                }
            }
        }
    }
    let mut assignment = vec![usize::MAX; n];
    let mut sizes: Vec<u64> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let pinned = |t: TensorId| t == l.input || t == l.output;
    assignment[l.input] = 0;
    sizes.push(l.tensors[l.input]);
    for (s, step) in l.steps.iter().enumerate() {
        for b in &step.bindings {
            let (Binding::Tensor(t) | Binding::TensorUniform(t)) = *b else {
                continue;
            };
            if assignment[t] != usize::MAX {
                continue;
            }
            let need = l.tensors[t];
            // Best fit among free buffers; the output keeps a buffer of its own size so
            // reading it back copies exactly its values.
            let pick = (!pinned(t))
                .then(|| {
                    free.iter()
                        .enumerate()
                        .filter(|(_, b)| sizes[**b] >= need)
                        .min_by_key(|(_, b)| sizes[**b])
                        .map(|(i, _)| i)
                })
                .flatten();
            assignment[t] = match pick {
                Some(i) => free.swap_remove(i),
                None => {
                    sizes.push(need);
                    sizes.len() - 1
                }
            };
            debug_assert!(first_use[t] == s);
        }
        for b in &step.bindings {
            let (Binding::Tensor(t) | Binding::TensorUniform(t)) = *b else {
                continue;
            };
            if last_use[t] == s && !pinned(t) && !free.contains(&assignment[t]) {
                free.push(assignment[t]);
            }
        }
    }
    // A tensor no step touches (the input of an empty program) still needs a buffer.
    for (slot, len) in assignment.iter_mut().zip(&l.tensors) {
        if *slot == usize::MAX {
            sizes.push(*len);
            *slot = sizes.len() - 1;
        }
    }
    (assignment, sizes)
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn u32_bytes(values: &[u32]) -> Vec<u8> {
    let mut bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    // Uniform structs are read in 16-byte rows.
    bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
    bytes
}

impl Program {
    pub(super) fn build(gpu: &Gpu, l: &Lowered) -> Result<Self, GpuError> {
        let device = &gpu.device;
        let (assignment, sizes) = assign_buffers(l);
        for (i, size) in sizes.iter().enumerate() {
            let bytes = size * 4;
            if bytes > gpu.max_binding_size {
                return Err(GpuError::TooLarge {
                    what: format!("feature-map buffer {i}"),
                    bytes,
                    limit: gpu.max_binding_size,
                });
            }
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buffers: Vec<wgpu::Buffer> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("tensor buffer {i}")),
                    size: size * 4,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::UNIFORM
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let mut pipeline_ms = 0.0;
        let mut dispatches = Vec::with_capacity(l.steps.len());
        for step in &l.steps {
            let (pipeline, ms) = gpu.pipeline(step.kernel, &step.constants)?;
            pipeline_ms += ms;
            let owned: Vec<Option<wgpu::Buffer>> = step
                .bindings
                .iter()
                .map(|b| match b {
                    Binding::Uniform(v) => Ok(Some(device.create_buffer_init(
                        &wgpu::util::BufferInitDescriptor {
                            label: Some(&step.label),
                            contents: &u32_bytes(v),
                            usage: wgpu::BufferUsages::UNIFORM,
                        },
                    ))),
                    Binding::Weights(v) => {
                        let bytes = v.len() as u64 * 4;
                        if bytes > gpu.max_binding_size {
                            return Err(GpuError::TooLarge {
                                what: format!("weights of {}", step.label),
                                bytes,
                                limit: gpu.max_binding_size,
                            });
                        }
                        let mut data = f32_bytes(v);
                        if data.is_empty() {
                            data.resize(16, 0);
                        }
                        Ok(Some(device.create_buffer_init(
                            &wgpu::util::BufferInitDescriptor {
                                label: Some(&step.label),
                                contents: &data,
                                usage: wgpu::BufferUsages::STORAGE,
                            },
                        )))
                    }
                    Binding::UniformWeights(v) => {
                        let mut data = f32_bytes(v);
                        if data.len() as u64 > UNIFORM_WEIGHTS_BYTES {
                            return Err(GpuError::TooLarge {
                                what: format!("uniform weights of {}", step.label),
                                bytes: data.len() as u64,
                                limit: UNIFORM_WEIGHTS_BYTES,
                            });
                        }
                        data.resize(UNIFORM_WEIGHTS_BYTES as usize, 0);
                        Ok(Some(device.create_buffer_init(
                            &wgpu::util::BufferInitDescriptor {
                                label: Some(&step.label),
                                contents: &data,
                                usage: wgpu::BufferUsages::UNIFORM,
                            },
                        )))
                    }
                    Binding::Tensor(_) | Binding::TensorUniform(_) => Ok(None),
                })
                .collect::<Result<_, _>>()?;
            let entries: Vec<wgpu::BindGroupEntry> = step
                .bindings
                .iter()
                .zip(&owned)
                .enumerate()
                .map(|(slot, (b, own))| {
                    let resource = match (b, own) {
                        (Binding::Tensor(t), _) => buffers[assignment[*t]].as_entire_binding(),
                        (Binding::TensorUniform(t), _) => {
                            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &buffers[assignment[*t]],
                                offset: 0,
                                size: wgpu::BufferSize::new(GATE_UNIFORM_BYTES),
                            })
                        }
                        (_, Some(own)) => own.as_entire_binding(),
                        (_, None) => unreachable!("uniforms and weights own a buffer"),
                    };
                    wgpu::BindGroupEntry {
                        binding: slot as u32,
                        resource,
                    }
                })
                .collect();
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&step.label),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            dispatches.push(Dispatch {
                pipeline,
                bind_group,
                workgroups: step.workgroups,
            });
        }
        let output_len = l.tensors[l.output];
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("output readback"),
            size: output_len * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let timestamps = gpu.timestamp_period_ns().map(|period_ns| Timestamps {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamp readback"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            period_ns,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Kernel {
                kernel: "bind groups",
                message: e.to_string(),
            });
        }
        let activation_bytes = sizes.iter().sum::<u64>() * 4;
        Ok(Self {
            device: gpu.device.clone(),
            queue: gpu.queue.clone(),
            input: buffers[assignment[l.input]].clone(),
            input_len: l.tensors[l.input],
            output: buffers[assignment[l.output]].clone(),
            output_len,
            readback,
            timestamps,
            uncaptured: Arc::clone(&gpu.uncaptured),
            info: ProgramInfo {
                pipeline_ms,
                dispatches: dispatches.len() as u32,
                activation_bytes,
            },
            dispatches,
        })
    }

    pub fn info(&self) -> ProgramInfo {
        self.info
    }

    /// Whether [`Program::run`] can time with GPU timestamps.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps.is_some()
    }

    /// Uploads the input; it stays resident for every later run.
    pub fn write_input(&self, input: &[f32]) -> Result<(), GpuError> {
        if input.len() as u64 != self.input_len {
            return Err(GpuError::InputLength {
                expected: self.input_len,
                got: input.len(),
            });
        }
        self.queue.write_buffer(&self.input, 0, &f32_bytes(input));
        self.wait()?;
        Ok(())
    }

    /// Runs every dispatch in one compute pass of one submission and waits for it. With
    /// `timestamps` (and support), the pass's beginning and end are also timestamped.
    pub fn run(&self, timestamps: bool) -> Result<RunTime, GpuError> {
        let ts = self.timestamps.as_ref().filter(|_| timestamps);
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("network"),
                timestamp_writes: ts.map(|t| wgpu::ComputePassTimestampWrites {
                    query_set: &t.set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            for d in &self.dispatches {
                pass.set_pipeline(&d.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                let [x, y, z] = d.workgroups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        if let Some(t) = ts {
            encoder.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
            encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.readback, 0, 16);
        }
        let commands = encoder.finish();
        let start = Instant::now();
        let index = self.queue.submit([commands]);
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| GpuError::Execution(e.to_string()))?;
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        self.check_errors()?;
        let gpu_ms = match ts {
            Some(t) => {
                let bytes = self.map_read(&t.readback)?;
                let tick = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
                    u64::from_le_bytes(b)
                };
                let ticks = tick(1).wrapping_sub(tick(0));
                // A wrapped or reversed pair reads as a huge number and fails the caller's
                // check against the wall clock.
                Some(ticks as f64 * t.period_ns / 1e6)
            }
            None => None,
        };
        Ok(RunTime { wall_ms, gpu_ms })
    }

    /// Copies the output back to the host.
    pub fn read_output(&self) -> Result<Vec<f32>, GpuError> {
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("read output"),
            });
        encoder.copy_buffer_to_buffer(&self.output, 0, &self.readback, 0, self.output_len * 4);
        self.queue.submit([encoder.finish()]);
        let bytes = self.map_read(&self.readback)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Uploads `input`, runs once and returns the output: what verification compares.
    pub fn infer(&self, input: &[f32]) -> Result<Vec<f32>, GpuError> {
        self.write_input(input)?;
        self.run(false)?;
        self.read_output()
    }

    fn wait(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Execution(e.to_string()))?;
        self.check_errors()
    }

    fn check_errors(&self) -> Result<(), GpuError> {
        let mut errors = self
            .uncaptured
            .lock()
            .map_err(|_| GpuError::Execution("the error log was poisoned".into()))?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(GpuError::Execution(std::mem::take(&mut *errors).join("; ")))
        }
    }

    fn map_read(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
        let (tx, rx) = mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| GpuError::Execution("the buffer map was dropped".into()))?
            .map_err(|e| GpuError::Execution(format!("cannot map a buffer: {e}")))?;
        let bytes = buffer
            .get_mapped_range(..)
            .map_err(|e| GpuError::Execution(format!("cannot read a mapped buffer: {e}")))?
            .to_vec();
        buffer.unmap();
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lower::{Kernel, Step};
    use super::*;

    fn step(tensors: &[TensorId]) -> Step {
        Step {
            kernel: Kernel::Add,
            constants: vec![],
            bindings: tensors.iter().map(|t| Binding::Tensor(*t)).collect(),
            workgroups: [1, 1, 1],
            label: String::new(),
        }
    }

    #[test]
    fn buffers_are_reused_once_dead_but_never_for_input_or_live_values() {
        // t0 input -> t1 -> t2 -> t3 = t2 + t1 -> t4 -> t5 -> t6 (output)
        let l = Lowered {
            tensors: vec![10, 10, 10, 10, 10, 10, 10],
            input: 0,
            output: 6,
            steps: vec![
                step(&[0, 1]),
                step(&[1, 2]),
                step(&[2, 1, 3]),
                step(&[3, 4]),
                step(&[4, 5]),
                step(&[5, 6]),
            ],
        };
        let (a, sizes) = assign_buffers(&l);
        assert_eq!(a[0], 0);
        for (x, y) in [(1, 2), (1, 3), (2, 3), (3, 4), (4, 5), (5, 6)] {
            assert_ne!(a[x], a[y], "t{x} and t{y} are live together: {a:?}");
        }
        assert!(
            a[1..].iter().all(|b| *b != 0),
            "nothing reuses the input buffer"
        );
        assert!(
            a[4] == a[1] || a[4] == a[2],
            "t4 reuses a buffer freed by step 2: {a:?}"
        );
        assert!(sizes.len() < 7, "{a:?}");
    }
}
