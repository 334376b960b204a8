//! The running driver: one connection, the read plan, writes.

use std::borrow::Cow;
use std::time::Duration;

use tokio_modbus::client::{Client, Context};
use tokio_modbus::slave::SlaveContext;
use tokio_modbus::{ExceptionCode, Request, Response, Slave};
use tracing::{debug, info, warn};
use uaedge_driver::{BadReason, DataType, LinkError, Reading, Value, WriteError};

use crate::address::{Format, Table};
use crate::codec;
use crate::options::{ByteOrder, Transport};
use crate::plan::Block;
use crate::transport;

/// A tag with the device defaults applied.
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub name: String,
    pub data_type: DataType,
    pub writable: bool,
    pub table: Table,
    pub offset: u16,
    pub format: Format,
    pub unit: u8,
    pub order: ByteOrder,
    /// The exception this tag last failed with when read on its own, so a standing fault
    /// is logged once rather than every poll.
    pub fault: Option<ExceptionCode>,
}

#[derive(Debug)]
pub(crate) struct BlockState {
    pub block: Block,
    /// Set once the device refused the coalesced request with IllegalDataAddress: from then
    /// on its tags are read one by one so that one bad address does not blank its neighbours.
    pub split: bool,
    pub fault: Option<ExceptionCode>,
}

enum Data {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

type Answer<T> = Result<Result<T, ExceptionCode>, LinkError>;

pub(crate) struct ModbusDriver {
    pub device: String,
    pub transport: Transport,
    pub default_unit: u8,
    pub timeout: Duration,
    pub retries: u32,
    pub tags: Vec<Tag>,
    pub blocks: Vec<BlockState>,
    pub ctx: Option<Context>,
    /// Units that answered MaskWriteRegister (0x16) with IllegalFunction: bit writes to them
    /// go through read-modify-write instead.
    pub no_mask_write: Vec<u8>,
}

impl ModbusDriver {
    /// Sends one request, retrying timeouts and garbled answers. A transport error is not
    /// retried: the stream is gone, and only a new connection (the runtime's job) helps.
    async fn call(&mut self, unit: u8, request: Request<'static>) -> Answer<Response> {
        let attempts = self.retries.saturating_add(1);
        let mut last = LinkError::not_connected("not connected");
        for attempt in 1..=attempts {
            let Some(ctx) = self.ctx.as_mut() else {
                return Err(LinkError::not_connected("not connected"));
            };
            ctx.set_slave(Slave(unit));
            match tokio::time::timeout(self.timeout, ctx.call(request.clone())).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(tokio_modbus::Error::Transport(e))) => {
                    self.ctx = None;
                    return Err(transport::io_error(&e, &format!("unit {unit}")));
                }
                Ok(Err(tokio_modbus::Error::Protocol(e))) => {
                    last = LinkError::protocol(format!("unit {unit}: {e}"));
                }
                Err(_) => {
                    last = LinkError::timeout(format!(
                        "unit {unit}: no answer within {:?}",
                        self.timeout
                    ));
                }
            }
            debug!(device = %self.device, unit, attempt, error = %last, "request failed");
        }
        // A late answer may still arrive on this stream and be taken for the next one's;
        // only a fresh connection is known to be clean.
        self.ctx = None;
        Err(last)
    }

    async fn read_range(&mut self, unit: u8, table: Table, start: u16, count: u16) -> Answer<Data> {
        let request = match table {
            Table::Coil => Request::ReadCoils(start, count),
            Table::DiscreteInput => Request::ReadDiscreteInputs(start, count),
            Table::InputRegister => Request::ReadInputRegisters(start, count),
            Table::HoldingRegister => Request::ReadHoldingRegisters(start, count),
        };
        let data = match self.call(unit, request).await? {
            Err(code) => return Ok(Err(code)),
            Ok(Response::ReadCoils(mut bits) | Response::ReadDiscreteInputs(mut bits)) => {
                // Bits come padded to a whole byte.
                bits.truncate(usize::from(count));
                Data::Bits(bits)
            }
            Ok(Response::ReadInputRegisters(words) | Response::ReadHoldingRegisters(words)) => {
                Data::Words(words)
            }
            Ok(other) => {
                return Err(LinkError::protocol(format!(
                    "unit {unit}: unexpected answer {other:?} to a read"
                )))
            }
        };
        Ok(Ok(data))
    }

    fn decode(&self, tag: usize, data: &Data, block_start: u16) -> Reading {
        let index = tag as u32;
        let Some(t) = self.tags.get(tag) else {
            return Reading::bad(index, BadReason::ConfigError);
        };
        let at = usize::from(t.offset.saturating_sub(block_start));
        let value = match data {
            Data::Bits(bits) => bits.get(at).map(|b| Value::Boolean(*b)),
            Data::Words(words) => words
                .get(at..at + usize::from(t.format.width()))
                .and_then(|regs| codec::decode(t.format, regs, t.order)),
        };
        match value {
            Some(v) => Reading::good(index, v),
            None => {
                debug!(device = %self.device, tag = %t.name, "answer too short for the tag");
                Reading::bad(index, BadReason::DeviceFailure)
            }
        }
    }

    async fn read_block(&mut self, b: usize, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        let Some(state) = self.blocks.get(b) else {
            return Ok(());
        };
        let Block {
            unit,
            table,
            start,
            count,
            ..
        } = state.block;
        let members = state.block.tags.len();
        if !state.split {
            match self.read_range(unit, table, start, count).await? {
                Ok(data) => {
                    self.block_recovered(b);
                    if let Some(state) = self.blocks.get(b) {
                        out.extend(
                            state
                                .block
                                .tags
                                .iter()
                                .map(|t| self.decode(*t, &data, start)),
                        );
                    }
                    return Ok(());
                }
                Err(ExceptionCode::IllegalDataAddress) if members > 1 => {
                    warn!(
                        device = %self.device, unit, request = %describe(table, start, count),
                        "device refused the coalesced read with IllegalDataAddress; reading its {members} tags one by one from now on"
                    );
                    if let Some(state) = self.blocks.get_mut(b) {
                        state.split = true;
                    }
                }
                Err(code) => {
                    self.block_failed(b, code);
                    if let Some(state) = self.blocks.get(b) {
                        out.extend(
                            state
                                .block
                                .tags
                                .iter()
                                .map(|t| Reading::bad(*t as u32, BadReason::DeviceFailure)),
                        );
                    }
                    return Ok(());
                }
            }
        }
        for i in 0..members {
            let Some(&tag) = self.blocks.get(b).and_then(|s| s.block.tags.get(i)) else {
                break;
            };
            let Some(t) = self.tags.get(tag) else {
                continue;
            };
            let (tag_start, width) = (t.offset, t.format.width());
            match self.read_range(unit, table, tag_start, width).await? {
                Ok(data) => {
                    self.tag_recovered(tag);
                    out.push(self.decode(tag, &data, tag_start));
                }
                Err(code) => {
                    self.tag_failed(tag, code);
                    out.push(Reading::bad(tag as u32, BadReason::DeviceFailure));
                }
            }
        }
        Ok(())
    }

    fn block_failed(&mut self, b: usize, code: ExceptionCode) {
        let Some(state) = self.blocks.get_mut(b) else {
            return;
        };
        if state.fault != Some(code) {
            let Block {
                unit,
                table,
                start,
                count,
                ..
            } = state.block;
            warn!(device = %self.device, unit, request = %describe(table, start, count),
                exception = ?code, "device refused a read; its tags are Bad");
            state.fault = Some(code);
        }
    }

    fn block_recovered(&mut self, b: usize) {
        let Some(state) = self.blocks.get_mut(b) else {
            return;
        };
        if state.fault.take().is_some() {
            let Block {
                unit,
                table,
                start,
                count,
                ..
            } = state.block;
            info!(device = %self.device, unit, request = %describe(table, start, count), "read answered again");
        }
    }

    fn tag_failed(&mut self, tag: usize, code: ExceptionCode) {
        let Some(t) = self.tags.get_mut(tag) else {
            return;
        };
        if t.fault != Some(code) {
            warn!(device = %self.device, tag = %t.name, unit = t.unit,
                address = %describe(t.table, t.offset, t.format.width()),
                exception = ?code, "device refused the tag's read");
            t.fault = Some(code);
        }
    }

    fn tag_recovered(&mut self, tag: usize) {
        if let Some(t) = self.tags.get_mut(tag) {
            if t.fault.take().is_some() {
                info!(device = %self.device, tag = %t.name, "tag readable again");
            }
        }
    }

    async fn write_register_bit(&mut self, unit: u8, offset: u16, bit: u8, on: bool) -> Answer<()> {
        let mask = 1u16 << bit;
        if !self.no_mask_write.contains(&unit) {
            let or = if on { mask } else { 0 };
            match self
                .call(unit, Request::MaskWriteRegister(offset, !mask, or))
                .await?
            {
                Ok(_) => return Ok(Ok(())),
                Err(ExceptionCode::IllegalFunction) => {
                    info!(device = %self.device, unit,
                        "device does not support mask write (0x16); writing bits by read-modify-write");
                    self.no_mask_write.push(unit);
                }
                Err(code) => return Ok(Err(code)),
            }
        }
        let current = match self
            .call(unit, Request::ReadHoldingRegisters(offset, 1))
            .await?
        {
            Ok(Response::ReadHoldingRegisters(words)) => match words.first() {
                Some(word) => *word,
                None => return Err(LinkError::protocol("empty answer to a one-register read")),
            },
            Ok(other) => {
                return Err(LinkError::protocol(format!(
                    "unexpected answer {other:?} to a read"
                )))
            }
            Err(code) => return Ok(Err(code)),
        };
        let new = if on { current | mask } else { current & !mask };
        Ok(self
            .call(unit, Request::WriteSingleRegister(offset, new))
            .await?
            .map(|_| ()))
    }

    async fn write_value(&mut self, tag: usize, value: &Value) -> Result<(), WriteError> {
        let Some(t) = self.tags.get(tag) else {
            return Err(WriteError::NotWritable);
        };
        if !t.writable || !t.table.is_writable() {
            return Err(WriteError::NotWritable);
        }
        let value = value
            .convert(t.data_type)
            .map_err(|e| WriteError::TypeMismatch(e.to_string()))?;
        let (unit, table, offset, format, order) = (t.unit, t.table, t.offset, t.format, t.order);
        if self.ctx.is_none() {
            return Err(WriteError::Link(LinkError::not_connected("not connected")));
        }
        let answer = match (table, format, &value) {
            (Table::Coil, Format::Bit, Value::Boolean(on)) => self
                .call(unit, Request::WriteSingleCoil(offset, *on))
                .await?
                .map(|_| ()),
            (Table::HoldingRegister, Format::RegisterBit(bit), Value::Boolean(on)) => {
                self.write_register_bit(unit, offset, bit, *on).await?
            }
            (Table::HoldingRegister, _, _) => {
                let regs =
                    codec::encode(format, &value, order).map_err(WriteError::TypeMismatch)?;
                let request = match regs.as_slice() {
                    [one] => Request::WriteSingleRegister(offset, *one),
                    _ => Request::WriteMultipleRegisters(offset, Cow::Owned(regs)),
                };
                self.call(unit, request).await?.map(|_| ())
            }
            _ => return Err(WriteError::NotWritable),
        };
        answer.map_err(|code| WriteError::Rejected(format!("{code:?}")))
    }
}

fn describe(table: Table, start: u16, count: u16) -> String {
    if count <= 1 {
        format!("{}:{start}", table.prefix())
    } else {
        format!("{}:{start}+{count}", table.prefix())
    }
}

#[uaedge_driver::async_trait]
impl uaedge_driver::Driver for ModbusDriver {
    async fn connect(&mut self) -> Result<(), LinkError> {
        self.disconnect().await;
        // A connect may cross a slower path than a request (DNS, a gateway waking up).
        let connect_timeout = self.timeout.max(Duration::from_secs(1));
        match transport::open(&self.transport, self.default_unit, connect_timeout).await {
            Ok(ctx) => {
                self.ctx = Some(ctx);
                info!(device = %self.device, link = %self.transport, "connected");
                Ok(())
            }
            Err(e) => {
                debug!(device = %self.device, link = %self.transport, error = %e, "connect failed");
                Err(e)
            }
        }
    }

    async fn read(&mut self, out: &mut Vec<Reading>) -> Result<(), LinkError> {
        if self.ctx.is_none() {
            return Err(LinkError::not_connected("not connected"));
        }
        let base = out.len();
        for b in 0..self.blocks.len() {
            if let Err(e) = self.read_block(b, out).await {
                out.truncate(base);
                debug!(device = %self.device, error = %e, "read failed");
                return Err(e);
            }
        }
        if let Some(fresh) = out.get_mut(base..) {
            fresh.sort_by_key(|r| r.tag);
        }
        Ok(())
    }

    async fn write(&mut self, tag: u32, value: &Value) -> Result<(), WriteError> {
        let index = tag as usize;
        let result = self.write_value(index, value).await;
        let name = self.tags.get(index).map_or("?", |t| t.name.as_str());
        match &result {
            Ok(()) => debug!(device = %self.device, tag = %name, %value, "written"),
            Err(e) => warn!(device = %self.device, tag = %name, %value, error = %e, "write failed"),
        }
        result
    }

    async fn disconnect(&mut self) {
        if let Some(mut ctx) = self.ctx.take() {
            // A peer that stopped reading must not hold up a reconnect or shutdown.
            let _ = tokio::time::timeout(self.timeout, ctx.disconnect()).await;
            debug!(device = %self.device, "disconnected");
        }
    }
}
