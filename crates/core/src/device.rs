//! Where a model runs, as every command that runs one takes it.

/// Where a model runs: the one device type of the project (`--device cpu|cuda|cuda:N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(i32),
}

/// `cpu`, `cuda` or `cuda:N`, as the commands take it.
impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("`{text}` is not cpu, cuda or cuda:N")),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
        }
    }
}

/// A device, or `auto`: CUDA where there is one, else the CPU, saying so (training's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Exact(Device),
}

/// `auto`, `cpu`, `cuda` or `cuda:N`.
impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "auto" {
            return Ok(DeviceChoice::Auto);
        }
        text.parse().map(DeviceChoice::Exact).map_err(|_| format!("`{text}` is not auto, cpu, cuda or cuda:N"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_as_the_commands_take_them() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert!("cuda:x".parse::<Device>().unwrap_err().contains("cpu, cuda or cuda:N"));
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cuda:1".parse(), Ok(DeviceChoice::Exact(Device::Cuda(1))));
        assert!("gpu".parse::<DeviceChoice>().unwrap_err().contains("auto, cpu, cuda or cuda:N"));
        assert!("auto".parse::<Device>().is_err(), "auto is training's, not a device");
    }
}
