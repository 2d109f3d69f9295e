//! Admission of sandboxes against their tenant's aggregate allowance. Pure arithmetic
//! over Kubernetes quantities; the controller supplies the counted sandboxes.

use crate::quantity::{Quantity, QuantityError};
use crate::resources::{Allowance, Reserved, Sandbox, SandboxResources};

/// What one or several sandboxes reserve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu: Quantity,
    pub memory: Quantity,
    pub gpus: u64,
    pub storage: Quantity,
    pub sandboxes: u64,
}

impl Usage {
    /// The reservation of one sandbox.
    pub fn of(r: &SandboxResources) -> Result<Self, QuantityError> {
        Ok(Self {
            cpu: r.cpu.parse()?,
            memory: r.memory.parse()?,
            gpus: Sandbox::gpu(r).map_or(0, |(_, n)| u64::from(n)),
            storage: r.storage.parse()?,
            sandboxes: 1,
        })
    }

    /// Canonical quantities for a Tenant's status.
    pub fn to_reserved(self) -> Reserved {
        Reserved {
            cpu: self.cpu.to_cpu_string(),
            memory: self.memory.to_bytes_string(),
            gpus: u32::try_from(self.gpus).unwrap_or(u32::MAX),
            storage: self.storage.to_bytes_string(),
            sandboxes: u32::try_from(self.sandboxes).unwrap_or(u32::MAX),
        }
    }
}

impl std::ops::Add for Usage {
    type Output = Self;

    fn add(self, o: Self) -> Self {
        Self {
            cpu: self.cpu + o.cpu,
            memory: self.memory + o.memory,
            gpus: self.gpus + o.gpus,
            storage: self.storage + o.storage,
            sandboxes: self.sandboxes + o.sandboxes,
        }
    }
}

/// An allowance in parsed form.
pub fn limits(a: &Allowance) -> Result<Usage, QuantityError> {
    Ok(Usage {
        cpu: a.cpu.parse()?,
        memory: a.memory.parse()?,
        gpus: u64::from(a.gpus),
        storage: a.storage.parse()?,
        sandboxes: u64::from(a.sandboxes),
    })
}

/// One resource the request would take over the allowance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excess {
    pub resource: &'static str,
    pub allowed: String,
    pub reserved: String,
    pub requested: String,
    pub over_by: String,
}

impl std::fmt::Display for Excess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: allowance {}, already reserved {}, this sandbox asks {}, over by {}",
            self.resource, self.allowed, self.reserved, self.requested, self.over_by
        )
    }
}

/// Would `request` on top of `reserved` stay within `limit`? Lists every excess.
pub fn check(limit: Usage, reserved: Usage, request: Usage) -> Result<(), Vec<Excess>> {
    let mut excess = Vec::new();
    let mut quantity =
        |name, l: Quantity, r: Quantity, q: Quantity, fmt: fn(Quantity) -> String| {
            if r + q > l {
                excess.push(Excess {
                    resource: name,
                    allowed: fmt(l),
                    reserved: fmt(r),
                    requested: fmt(q),
                    over_by: fmt(r + q - l),
                });
            }
        };
    quantity(
        "cpu",
        limit.cpu,
        reserved.cpu,
        request.cpu,
        Quantity::to_cpu_string,
    );
    quantity(
        "memory",
        limit.memory,
        reserved.memory,
        request.memory,
        Quantity::to_bytes_string,
    );
    quantity(
        "storage",
        limit.storage,
        reserved.storage,
        request.storage,
        Quantity::to_bytes_string,
    );
    let units = |n: u64| Quantity::from_units(i128::from(n));
    quantity(
        "gpus",
        units(limit.gpus),
        units(reserved.gpus),
        units(request.gpus),
        Quantity::to_cpu_string,
    );
    quantity(
        "sandboxes",
        units(limit.sandboxes),
        units(reserved.sandboxes),
        units(request.sandboxes),
        Quantity::to_cpu_string,
    );
    if excess.is_empty() {
        Ok(())
    } else {
        Err(excess)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{resources, tenant};

    #[test]
    fn sums_and_formats_reservations() {
        let a = Usage::of(&resources(None)).unwrap();
        let b = Usage::of(&resources(Some(("nvidia.com/gpu", 1)))).unwrap();
        let total = (a + b).to_reserved();
        assert_eq!(total.cpu, "8");
        assert_eq!(total.memory, "32Gi");
        assert_eq!(total.storage, "100Gi");
        assert_eq!((total.gpus, total.sandboxes), (1, 2));
    }

    #[test]
    fn within_allowance_is_admitted() {
        let limit = limits(&tenant().allowance).unwrap();
        let one = Usage::of(&resources(None)).unwrap();
        let reserved = one + one + one;
        assert_eq!(
            check(limit, reserved, one),
            Ok(()),
            "4 × 4 cpu fits 16 exactly"
        );
    }

    #[test]
    fn excess_names_each_resource_and_the_amount() {
        let limit = limits(&tenant().allowance).unwrap();
        let one = Usage::of(&resources(None)).unwrap();
        let reserved = one + one + one + one;
        let mut big = resources(Some(("nvidia.com/gpu", 3)));
        big.memory = "500Mi".into();
        let excess = check(limit, reserved, Usage::of(&big).unwrap()).unwrap_err();
        let text: Vec<_> = excess.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "cpu: allowance 16, already reserved 16, this sandbox asks 4, over by 4",
                "memory: allowance 64Gi, already reserved 64Gi, this sandbox asks 500Mi, over by 500Mi",
                "gpus: allowance 2, already reserved 0, this sandbox asks 3, over by 1",
            ]
        );
    }

    #[test]
    fn sandbox_count_is_limited() {
        let mut allowance = tenant().allowance;
        allowance.sandboxes = 1;
        let limit = limits(&allowance).unwrap();
        let mut small = resources(None);
        small.cpu = "100m".into();
        let one = Usage::of(&small).unwrap();
        let e = check(limit, one, one).unwrap_err();
        assert_eq!(e[0].resource, "sandboxes");
        assert_eq!(e[0].over_by, "1");
    }
}
