//! Coalescing points into as few reads as possible.

use enos_collector_config::modbus::{Area, ModbusPoint as PointConfig};
use std::collections::BTreeSet;

/// One read request and the points it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub area: Area,
    pub start: u16,
    pub count: u16,
    /// Indices into the device's point list.
    pub points: Vec<usize>,
}

/// Plans the reads of a set of points: sorted by area and address, adjacent points merged while
/// the hole between them is at most `max_gap` and the block stays within `max_regs` registers
/// (or 2000 bits for coils and discrete inputs). A point marked `new_block`, or at an (area,
/// address) in `cuts`, starts a new block unless it starts at the block's own first address.
pub fn plan(points: &[PointConfig], which: &[usize], max_gap: u16, max_regs: u16, cuts: &BTreeSet<(Area, u16)>) -> Vec<Block> {
    let mut idx: Vec<usize> = which.to_vec();
    idx.sort_by_key(|&i| (points[i].at.area, points[i].at.address));
    let mut blocks: Vec<Block> = Vec::new();
    for i in idx {
        let p = &points[i];
        let (lo, hi) = (p.at.address as u32, p.at.address as u32 + p.at.registers() as u32);
        let limit = if p.at.area.is_bits() { 2000 } else { max_regs.min(125) as u32 };
        if let Some(b) = blocks.last_mut() {
            let end = b.start as u32 + b.count as u32;
            let cut = (p.at.new_block || cuts.contains(&(p.at.area, p.at.address))) && p.at.address != b.start;
            if b.area == p.at.area && !cut && lo <= end + max_gap as u32 && hi.max(end) - b.start as u32 <= limit {
                b.count = (hi.max(end) - b.start as u32) as u16;
                b.points.push(i);
                continue;
            }
        }
        blocks.push(Block { area: p.at.area, start: p.at.address, count: (hi - lo) as u16, points: vec![i] });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use enos_collector_config::modbus::{DataType, ModbusAddress};
    use enos_collector_config::PointMeta;

    fn p(area: Area, address: u16, t: DataType) -> PointConfig {
        PointConfig::new(PointMeta::named(&format!("{area:?}{address}")), ModbusAddress::new(area, address, t))
    }

    #[test]
    fn adjacent_points_merge_gaps_split_and_125_is_never_exceeded() {
        let pts = vec![
            p(Area::Holding, 10, DataType::F32),
            p(Area::Holding, 0, DataType::U16),
            p(Area::Holding, 1, DataType::U16),
            p(Area::Holding, 3, DataType::U16),  // gap of 1 from 1
            p(Area::Holding, 30, DataType::U16), // gap of 18: new block with max_gap 8
            p(Area::Input, 0, DataType::U16),
            p(Area::Coil, 5, DataType::Bool),
            p(Area::Coil, 6, DataType::Bool),
        ];
        let all: Vec<usize> = (0..pts.len()).collect();
        let none = BTreeSet::new();
        let b = plan(&pts, &all, 8, 125, &none);
        let shape: Vec<(Area, u16, u16)> = b.iter().map(|b| (b.area, b.start, b.count)).collect();
        assert_eq!(shape, vec![(Area::Coil, 5, 2), (Area::Input, 0, 1), (Area::Holding, 0, 12), (Area::Holding, 30, 1)]);
        assert_eq!(b[2].points, vec![1, 2, 3, 0]);

        let many: Vec<PointConfig> = (0..300).map(|a| p(Area::Holding, a, DataType::U16)).collect();
        let all: Vec<usize> = (0..300).collect();
        let b = plan(&many, &all, 0, 125, &none);
        assert_eq!(b.iter().map(|b| b.count).collect::<Vec<_>>(), vec![125, 125, 50]);
        let b = plan(&many, &all, 0, 60, &none);
        assert!(b.iter().all(|b| b.count <= 60));
        assert_eq!(b.iter().map(|b| b.points.len()).sum::<usize>(), 300);
    }

    #[test]
    fn a_marked_point_or_a_learned_cut_starts_a_new_block() {
        let mut pts: Vec<PointConfig> = [0, 2, 4, 6, 8].iter().map(|&a| p(Area::Holding, a, DataType::U16)).collect();
        let all: Vec<usize> = (0..pts.len()).collect();
        let shape = |b: Vec<Block>| b.iter().map(|b| (b.start, b.count)).collect::<Vec<_>>();
        assert_eq!(shape(plan(&pts, &all, 8, 125, &BTreeSet::new())), vec![(0, 9)]);
        pts[2].at.new_block = true; // address 4: the table says a hole is before it
        assert_eq!(shape(plan(&pts, &all, 8, 125, &BTreeSet::new())), vec![(0, 3), (4, 5)]);
        let cuts = BTreeSet::from([(Area::Holding, 8), (Area::Input, 2)]);
        assert_eq!(shape(plan(&pts, &all, 8, 125, &cuts)), vec![(0, 3), (4, 3), (8, 1)]);
        // A mark on the first point of a block changes nothing.
        pts[0].at.new_block = true;
        assert_eq!(shape(plan(&pts, &all, 8, 125, &cuts)), vec![(0, 3), (4, 3), (8, 1)]);
    }
}
