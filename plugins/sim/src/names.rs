//! The tags' names of a simulated device.

/// The tags' names end to end in one string, for log lines and errors: one allocation
/// for the device instead of one a tag.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub text: String,
    pub ends: Vec<u32>,
}

impl Names {
    pub fn push(&mut self, name: &str) -> Result<(), String> {
        self.text.push_str(name);
        let end = u32::try_from(self.text.len())
            .map_err(|_| "the tags' names add up to more than 4 GiB".to_string())?;
        self.ends.push(end);
        Ok(())
    }

    pub fn get(&self, i: usize) -> &str {
        let from = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let to = self.ends.get(i).copied().unwrap_or(from);
        self.text
            .get(from as usize..to as usize)
            .unwrap_or_default()
    }
}
