//! An in-process Modbus device for the driver's tests: a shared register map served over
//! Modbus TCP or RTU-over-TCP, with chosen exception codes, a request log, silence on
//! demand, and stop/restart on the same port.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use uaedge_driver::{DataType, DeviceInfo, Driver, DriverFactory, Reading, TagSpec, Value};
use uaedge_modbus::{ByteOrder, ModbusFactory, Table, TagOptions};

#[derive(Debug, Default)]
pub struct Device {
    pub coils: HashMap<(u8, u16), bool>,
    pub discrete: HashMap<(u8, u16), bool>,
    pub input: HashMap<(u8, u16), u16>,
    pub holding: HashMap<(u8, u16), u16>,
    /// Any request of that unit and table whose range covers the address gets the code.
    pub exceptions: HashMap<(u8, Table, u16), ExceptionCode>,
    pub requests: Vec<(u8, Request<'static>)>,
    /// Swallows every request without answering.
    pub silent: bool,
    /// Answers MaskWriteRegister with IllegalFunction, as many older devices do.
    pub no_mask_write: bool,
    pub connections: usize,
}

impl Device {
    pub fn set_holding(&mut self, unit: u8, start: u16, regs: &[u16]) {
        for (i, r) in regs.iter().enumerate() {
            self.holding.insert((unit, start + i as u16), *r);
        }
    }

    pub fn holding(&self, unit: u8, start: u16, count: u16) -> Vec<u16> {
        (start..start + count)
            .map(|a| self.holding.get(&(unit, a)).copied().unwrap_or(0))
            .collect()
    }

    fn check(&self, unit: u8, table: Table, start: u16, count: u16) -> Result<(), ExceptionCode> {
        for a in start..start.saturating_add(count) {
            if let Some(code) = self.exceptions.get(&(unit, table, a)) {
                return Err(*code);
            }
        }
        Ok(())
    }

    fn handle(&mut self, req: SlaveRequest<'static>) -> Result<Option<Response>, ExceptionCode> {
        let unit = req.slave;
        self.requests.push((unit, req.request.clone()));
        if self.silent {
            return Ok(None);
        }
        let bits = |map: &HashMap<(u8, u16), bool>, a: u16, n: u16| -> Vec<bool> {
            (a..a + n)
                .map(|i| map.get(&(unit, i)).copied().unwrap_or(false))
                .collect()
        };
        let words = |map: &HashMap<(u8, u16), u16>, a: u16, n: u16| -> Vec<u16> {
            (a..a + n)
                .map(|i| map.get(&(unit, i)).copied().unwrap_or(0))
                .collect()
        };
        let response = match req.request {
            Request::ReadCoils(a, n) => {
                self.check(unit, Table::Coil, a, n)?;
                Response::ReadCoils(bits(&self.coils, a, n))
            }
            Request::ReadDiscreteInputs(a, n) => {
                self.check(unit, Table::DiscreteInput, a, n)?;
                Response::ReadDiscreteInputs(bits(&self.discrete, a, n))
            }
            Request::ReadInputRegisters(a, n) => {
                self.check(unit, Table::InputRegister, a, n)?;
                Response::ReadInputRegisters(words(&self.input, a, n))
            }
            Request::ReadHoldingRegisters(a, n) => {
                self.check(unit, Table::HoldingRegister, a, n)?;
                Response::ReadHoldingRegisters(words(&self.holding, a, n))
            }
            Request::WriteSingleCoil(a, v) => {
                self.check(unit, Table::Coil, a, 1)?;
                self.coils.insert((unit, a), v);
                Response::WriteSingleCoil(a, v)
            }
            Request::WriteSingleRegister(a, v) => {
                self.check(unit, Table::HoldingRegister, a, 1)?;
                self.holding.insert((unit, a), v);
                Response::WriteSingleRegister(a, v)
            }
            Request::WriteMultipleRegisters(a, values) => {
                self.check(unit, Table::HoldingRegister, a, values.len() as u16)?;
                self.set_holding(unit, a, &values);
                Response::WriteMultipleRegisters(a, values.len() as u16)
            }
            Request::MaskWriteRegister(a, and, or) => {
                if self.no_mask_write {
                    return Err(ExceptionCode::IllegalFunction);
                }
                self.check(unit, Table::HoldingRegister, a, 1)?;
                let current = self.holding.get(&(unit, a)).copied().unwrap_or(0);
                self.holding
                    .insert((unit, a), (current & and) | (or & !and));
                Response::MaskWriteRegister(a, and, or)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        Ok(Some(response))
    }
}

#[derive(Clone)]
struct Sim(Arc<Mutex<Device>>);

impl Service for Sim {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        ready(self.0.lock().unwrap().handle(req))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Tcp,
    RtuOverTcp,
}

pub struct Server {
    pub addr: SocketAddr,
    pub framing: Framing,
    device: Arc<Mutex<Device>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    // The restarted server takes the port back while the old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(64).unwrap()
}

impl Server {
    pub async fn start(framing: Framing) -> Server {
        let mut server = Server {
            addr: "127.0.0.1:0".parse().unwrap(),
            framing,
            device: Arc::new(Mutex::new(Device::default())),
            stop: None,
            task: None,
        };
        server.run(listen(server.addr));
        server
    }

    fn run(&mut self, listener: TcpListener) {
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let device = self.device.clone();
        let on_connected = move |stream, _addr| {
            let device = device.clone();
            async move {
                device.lock().unwrap().connections += 1;
                Ok(Some((Sim(device), stream)))
            }
        };
        let abort = async move {
            let _ = rx.await;
        };
        let framing = self.framing;
        self.task = Some(tokio::spawn(async move {
            let _ = match framing {
                Framing::Tcp => {
                    tokio_modbus::server::tcp::Server::new(listener)
                        .serve_until(&on_connected, |_| {}, abort)
                        .await
                }
                Framing::RtuOverTcp => {
                    tokio_modbus::server::rtu_over_tcp::Server::new(listener)
                        .serve_until(&on_connected, |_| {}, abort)
                        .await
                }
            };
        }));
        self.stop = Some(tx);
    }

    pub fn device(&self) -> MutexGuard<'_, Device> {
        self.device.lock().unwrap()
    }

    pub fn requests(&self) -> usize {
        self.device().requests.len()
    }

    pub fn clear_requests(&self) {
        self.device().requests.clear();
    }

    /// Stops listening and drops every connection.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    /// Serves the same map on the same port again.
    pub fn restart(&mut self) {
        self.run(listen(self.addr));
    }
}

/// A tag as a test writes it: name, type, address, writable, tag options in YAML.
pub type TagDef<'a> = (&'a str, DataType, &'a str, bool, &'a str);

pub fn driver(options_yaml: &str, tags: &[TagDef<'_>]) -> Box<dyn Driver> {
    let factory = ModbusFactory;
    let options = serde_yaml::from_str(options_yaml).unwrap();
    let specs: Vec<TagSpec<_>> = tags
        .iter()
        .map(|(name, t, address, writable, opts)| {
            let opts: TagOptions = if opts.is_empty() {
                TagOptions::default()
            } else {
                serde_yaml::from_str(opts).unwrap()
            };
            TagSpec {
                name: name.to_string(),
                data_type: *t,
                writable: *writable,
                address: factory.parse_address(address, *t, &opts).unwrap(),
            }
        })
        .collect();
    factory.validate(&options, &specs).unwrap();
    let device = DeviceInfo {
        name: "test".into(),
        poll_interval: Duration::from_millis(100),
    };
    factory.build(&device, options, specs)
}

pub fn tcp_options(server: &Server, extra: &str) -> String {
    let transport = match server.framing {
        Framing::Tcp => "tcp",
        Framing::RtuOverTcp => "rtu-over-tcp",
    };
    // Generous unless the test is about timeouts: a loaded CI machine must not fail reads.
    let timeout = if extra.contains("timeout:") {
        ""
    } else {
        "timeout: 2s\n"
    };
    format!(
        "transport: {transport}\nhost: {}\nport: {}\n{timeout}{extra}",
        server.addr.ip(),
        server.addr.port()
    )
}

pub async fn read(driver: &mut Box<dyn Driver>) -> Vec<Reading> {
    let mut out = Vec::new();
    driver.read(&mut out).await.unwrap();
    out
}

pub fn values(readings: &[Reading]) -> Vec<Option<Value>> {
    readings.iter().map(|r| r.value.clone()).collect()
}

/// Registers for a value given as its big-endian bytes, following the crate's documented
/// byte-order table literally (kept independent of the crate's codec on purpose).
pub fn wire(be: &[u8], order: ByteOrder) -> Vec<u16> {
    let n = be.len() / 2;
    (0..n)
        .map(|i| {
            let src = match order {
                ByteOrder::Abcd | ByteOrder::Badc => i,
                ByteOrder::Cdab | ByteOrder::Dcba => n - 1 - i,
            };
            let (hi, lo) = (be[2 * src], be[2 * src + 1]);
            match order {
                ByteOrder::Abcd | ByteOrder::Cdab => u16::from_be_bytes([hi, lo]),
                ByteOrder::Badc | ByteOrder::Dcba => u16::from_be_bytes([lo, hi]),
            }
        })
        .collect()
}

/// A deadline for polling loops: tests wait for a condition, never for a fixed time.
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(within: Duration) -> Deadline {
        Deadline(Instant::now() + within)
    }

    /// Fails the test once the deadline has passed; otherwise lets other tasks run briefly.
    pub async fn tick(&self, what: &str) {
        assert!(Instant::now() < self.0, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
