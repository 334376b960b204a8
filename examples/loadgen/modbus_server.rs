//! The Modbus side of the `modbus-10k` scenario: one TCP server answering for several unit
//! ids, every holding register holding the same counter k, bumped every period. The time
//! each k was set is kept, so latency can be measured from the value alone whatever edge
//! polls the server.

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

/// When each counter value (mod 2^16, the width of a register) was set.
pub struct SetTimes {
    us: Vec<AtomicU64>,
}

impl SetTimes {
    fn new() -> SetTimes {
        SetTimes {
            us: (0..=u16::MAX).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Microseconds since the Unix epoch at which the register value `k` was set (0: never).
    pub fn get(&self, k: u16) -> u64 {
        self.us[usize::from(k)].load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct Counter {
    units: u8,
    registers: u16,
    k: Arc<AtomicU32>,
}

impl Service for Counter {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        ready(match req.request {
            Request::ReadHoldingRegisters(address, count) => {
                let end = u32::from(address) + u32::from(count);
                if req.slave == 0 || req.slave > self.units {
                    Err(ExceptionCode::GatewayTargetDevice)
                } else if count == 0 || count > 125 || end > u32::from(self.registers) {
                    Err(ExceptionCode::IllegalDataAddress)
                } else {
                    let k = self.k.load(Ordering::Acquire) as u16;
                    Ok(Response::ReadHoldingRegisters(vec![k; usize::from(count)]))
                }
            }
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

pub struct CounterServer {
    pub port: u16,
    pub times: Arc<SetTimes>,
    task: tokio::task::JoinHandle<()>,
    ticker: tokio::task::JoinHandle<()>,
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl CounterServer {
    pub async fn start(units: u8, registers: u16, period: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let times = Arc::new(SetTimes::new());
        let k = Arc::new(AtomicU32::new(1));
        times.us[1].store(now_us(), Ordering::Release);
        let service = Counter {
            units,
            registers,
            k: k.clone(),
        };
        let task = tokio::spawn(async move {
            let on_connected = move |stream, _addr| {
                let service = service.clone();
                async move { Ok(Some((service, stream))) }
            };
            let server = tokio_modbus::server::tcp::Server::new(listener);
            if let Err(e) = server.serve(&on_connected, |_| {}).await {
                eprintln!("loadgen: modbus server stopped: {e}");
            }
        });
        let stamps = times.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let next = k.load(Ordering::Acquire).wrapping_add(1) & 0xFFFF;
                // The time goes in before the value, so whoever reads k finds its time.
                stamps.us[next as usize].store(now_us(), Ordering::Release);
                k.store(next, Ordering::Release);
            }
        });
        Ok(CounterServer {
            port,
            times,
            task,
            ticker,
        })
    }
}

impl Drop for CounterServer {
    fn drop(&mut self) {
        self.task.abort();
        self.ticker.abort();
    }
}
