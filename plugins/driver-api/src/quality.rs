use std::fmt;

/// Why a value is Bad. Each maps one-to-one onto an OPC UA StatusCode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadReason {
    /// No link to the device (never connected, or reconnecting). BadNotConnected.
    NotConnected,
    /// The link is up but the exchange failed (timeout, garbled frame). BadCommunicationError.
    CommFailure,
    /// The device answered with an error for this tag (e.g. a Modbus exception). BadDeviceFailure.
    DeviceFailure,
    /// The tag's configuration does not fit the device. BadConfigurationError.
    ConfigError,
    /// The device or tag is switched off on purpose. BadOutOfService.
    OutOfService,
}

/// Why a value is Uncertain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UncertainReason {
    /// The value is the last one read before the link degraded. UncertainLastUsableValue.
    LastUsableValue,
}

/// The quality of a value, as the model carries it from driver to every consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Quality {
    #[default]
    Good,
    Uncertain(UncertainReason),
    Bad(BadReason),
}

impl Quality {
    pub fn is_good(self) -> bool {
        matches!(self, Quality::Good)
    }

    pub fn is_bad(self) -> bool {
        matches!(self, Quality::Bad(_))
    }

    /// The Sparkplug B `Quality` property value (192 Good, 64 Uncertain, 0 Bad).
    pub fn sparkplug_code(self) -> i32 {
        match self {
            Quality::Good => 192,
            Quality::Uncertain(_) => 64,
            Quality::Bad(_) => 0,
        }
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quality::Good => f.write_str("Good"),
            Quality::Uncertain(UncertainReason::LastUsableValue) => {
                f.write_str("Uncertain(LastUsableValue)")
            }
            Quality::Bad(reason) => write!(f, "Bad({reason:?})"),
        }
    }
}
