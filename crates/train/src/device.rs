//! Which device training runs on, and what it costs in memory.

use anyhow::bail;
use simcse_core::{Device, DeviceChoice};

/// libtorch only registers CUDA when libtorch_cuda.so is loaded, which the linker drops as
/// unused (../shared/gpu/README.md): load it by hand, quietly where it is absent or cannot load
/// (a CPU machine).
pub fn load_cuda() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let name = c"libtorch_cuda.so";
        // SAFETY: dlopen with a valid C string; the handle is kept for the process's life.
        unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    });
}

/// The libtorch device for `--device`: an error where CUDA is asked for and libtorch has none
/// (or not that one), never a quiet fall back to the CPU.
pub fn select(choice: DeviceChoice) -> anyhow::Result<tch::Device> {
    load_cuda();
    let cuda = tch::Cuda::is_available();
    match choice {
        DeviceChoice::Exact(Device::Cpu) => Ok(tch::Device::Cpu),
        DeviceChoice::Exact(device) if !cuda => bail!(
            "--device {device}, but libtorch sees no CUDA device: {} (is a GPU present and its driver loaded? \
             is libtorch_cuda.so, with the CUDA 13 and cuDNN 9 libraries, on the library path?)",
            if tch::Cuda::device_count() == 0 { "no device found" } else { "CUDA did not initialize" }
        ),
        DeviceChoice::Exact(Device::Cuda(index)) => {
            let count = tch::Cuda::device_count();
            if index < 0 || index as i64 >= count {
                bail!("--device cuda:{index}, but libtorch sees {count} CUDA device(s): cuda:0 to cuda:{}", count - 1);
            }
            Ok(tch::Device::Cuda(index as usize))
        }
        DeviceChoice::Auto if cuda => Ok(tch::Device::Cuda(0)),
        DeviceChoice::Auto => {
            errln!("note: no CUDA device; training on the CPU");
            Ok(tch::Device::Cpu)
        }
    }
}

/// GPU memory this process holds now, as the driver counts it (NVML; the CUDA context
/// included), or `None` without NVML or a GPU.
pub fn gpu_memory_bytes() -> Option<u64> {
    nvml::process_memory()
}

/// This process's peak resident memory (the kernel's VmHWM).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

mod nvml {
    use std::ffi::{c_int, c_uint, c_void};
    use std::sync::OnceLock;

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct ProcessInfo {
        pid: c_uint,
        used_gpu_memory: u64,
        gpu_instance_id: c_uint,
        compute_instance_id: c_uint,
    }

    type Init = unsafe extern "C" fn() -> c_int;
    type Handle = unsafe extern "C" fn(c_uint, *mut *mut c_void) -> c_int;
    type Processes = unsafe extern "C" fn(*mut c_void, *mut c_uint, *mut ProcessInfo) -> c_int;

    struct Nvml {
        device: *mut c_void,
        processes: Processes,
    }
    // SAFETY: the handle is an opaque NVML device handle, valid for the process's life.
    unsafe impl Send for Nvml {}
    unsafe impl Sync for Nvml {}

    fn nvml() -> Option<&'static Nvml> {
        static NVML: OnceLock<Option<Nvml>> = OnceLock::new();
        NVML.get_or_init(|| unsafe {
            let lib = libc::dlopen(c"libnvidia-ml.so.1".as_ptr(), libc::RTLD_NOW);
            if lib.is_null() {
                return None;
            }
            let symbol = |name: &std::ffi::CStr| {
                let p = libc::dlsym(lib, name.as_ptr());
                (!p.is_null()).then_some(p)
            };
            let init: Init = std::mem::transmute(symbol(c"nvmlInit_v2")?);
            let handle: Handle = std::mem::transmute(symbol(c"nvmlDeviceGetHandleByIndex_v2")?);
            let processes: Processes = std::mem::transmute(symbol(c"nvmlDeviceGetComputeRunningProcesses_v3")?);
            if init() != 0 {
                return None;
            }
            let mut device = std::ptr::null_mut();
            (handle(0, &mut device) == 0).then_some(Nvml { device, processes })
        })
        .as_ref()
    }

    pub fn process_memory() -> Option<u64> {
        let nvml = nvml()?;
        let mut infos = [ProcessInfo::default(); 64];
        let mut count = infos.len() as c_uint;
        // SAFETY: NVML fills at most `count` entries of the buffer.
        if unsafe { (nvml.processes)(nvml.device, &mut count, infos.as_mut_ptr()) } != 0 {
            return None;
        }
        let pid = std::process::id();
        infos[..count as usize].iter().find(|p| p.pid == pid).map(|p| p.used_gpu_memory)
    }
}
