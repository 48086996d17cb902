//! Where a flow graph's nodes go: a layered (Sugiyama) layout from `rust-sugiyama`, upstream
//! tasks above their dependants, so edges read top to bottom without overlapping nodes.
//! Independent parts of the graph sit side by side.

use std::collections::HashMap;
use std::hash::Hash;

/// A node's box, in the units the coordinates use.
pub const NODE_WIDTH: f64 = 180.0;
pub const NODE_HEIGHT: f64 = 44.0;
const SPACING: f64 = 40.0;

/// Positions (top-left corners) by node id, and the drawing's width and height.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout<N: Eq + Hash> {
    pub at: HashMap<N, (f64, f64)>,
    pub width: f64,
    pub height: f64,
}

/// Lays out `nodes` with `edges` as (upstream, dependant) pairs.
pub fn layered<N: Copy + Eq + Hash>(nodes: &[N], edges: &[(N, N)]) -> Layout<N> {
    let index: HashMap<N, u32> = nodes.iter().enumerate().map(|(i, n)| (*n, i as u32)).collect();
    let vertices: Vec<(u32, (f64, f64))> = (0..nodes.len() as u32).map(|i| (i, (NODE_WIDTH, NODE_HEIGHT))).collect();
    let pairs: Vec<(u32, u32)> =
        edges.iter().filter_map(|(a, b)| Some((*index.get(a)?, *index.get(b)?))).filter(|(a, b)| a != b).collect();
    let config = rust_sugiyama::configure::Config {
        vertex_spacing: NODE_WIDTH + SPACING,
        dummy_vertices: true,
        ..Default::default()
    };
    // The library may panic on input it does not expect; a layer per longest path is the fallback.
    let parts = std::panic::catch_unwind(|| rust_sugiyama::from_vertices_and_edges(&vertices, &pairs, &config))
        .unwrap_or_default();
    let mut at = HashMap::new();
    let (mut left, mut height) = (0.0f64, 0.0f64);
    for (coords, _, _) in &parts {
        let min_x = coords.iter().map(|(_, (x, _))| *x).fold(f64::INFINITY, f64::min);
        let min_y = coords.iter().map(|(_, (_, y))| *y).fold(f64::INFINITY, f64::min);
        let mut right = left;
        for (v, (x, y)) in coords {
            let Some(id) = nodes.get(*v) else { continue };
            // The library's y grows with the layer; rows are a node's height plus spacing apart.
            let layer = ((y - min_y) / (NODE_WIDTH + SPACING)).round().max(0.0);
            let pos = (left + (x - min_x), layer * (NODE_HEIGHT + SPACING));
            right = right.max(pos.0 + NODE_WIDTH);
            height = height.max(pos.1 + NODE_HEIGHT);
            at.insert(*id, pos);
        }
        left = right + SPACING;
    }
    if at.len() != nodes.len() {
        return longest_path(nodes, edges);
    }
    Layout { at, width: (left - SPACING).max(0.0), height }
}

/// Each node on the layer after its deepest upstream; nodes of a layer side by side.
fn longest_path<N: Copy + Eq + Hash>(nodes: &[N], edges: &[(N, N)]) -> Layout<N> {
    let mut layer: HashMap<N, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    for _ in 0..nodes.len() {
        let mut changed = false;
        for (a, b) in edges {
            let la = layer.get(a).copied().unwrap_or(0);
            if let Some(lb) = layer.get_mut(b) {
                if *lb < la + 1 && la + 1 < nodes.len() {
                    *lb = la + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut per_layer: HashMap<usize, usize> = HashMap::new();
    let mut at = HashMap::new();
    let (mut width, mut height) = (0.0f64, 0.0f64);
    for n in nodes {
        let l = layer.get(n).copied().unwrap_or(0);
        let slot = per_layer.entry(l).or_insert(0);
        let pos = (*slot as f64 * (NODE_WIDTH + SPACING), l as f64 * (NODE_HEIGHT + SPACING));
        *slot += 1;
        width = width.max(pos.0 + NODE_WIDTH);
        height = height.max(pos.1 + NODE_HEIGHT);
        at.insert(*n, pos);
    }
    Layout { at, width, height }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < NODE_WIDTH && (a.1 - b.1).abs() < NODE_HEIGHT
    }

    fn check(l: &Layout<i64>, nodes: &[i64], edges: &[(i64, i64)]) {
        assert_eq!(l.at.len(), nodes.len());
        for (i, a) in nodes.iter().enumerate() {
            for b in &nodes[i + 1..] {
                assert!(!overlap(l.at[a], l.at[b]), "{a} and {b} overlap: {l:?}");
            }
        }
        for (a, b) in edges {
            assert!(l.at[a].1 < l.at[b].1, "{a} is drawn above its dependant {b}: {l:?}");
        }
        for (x, y) in l.at.values() {
            assert!(*x >= 0.0 && *y >= 0.0 && x + NODE_WIDTH <= l.width + 0.01 && y + NODE_HEIGHT <= l.height + 0.01);
        }
    }

    #[test]
    fn a_diamond_reads_top_to_bottom_without_overlaps() {
        let nodes = [1, 2, 3, 4, 5];
        let edges = [(1, 2), (1, 3), (2, 4), (3, 4), (2, 5), (3, 5)];
        let l = layered(&nodes, &edges);
        check(&l, &nodes, &edges);
        assert_eq!(l.at[&2].1, l.at[&3].1, "left and right share a layer");
    }

    #[test]
    fn a_long_chain_an_edge_skipping_layers_and_loose_nodes() {
        let nodes: Vec<i64> = (1..=8).collect();
        let edges = [(1, 2), (2, 3), (3, 4), (1, 4), (6, 7)];
        let l = layered(&nodes, &edges);
        check(&l, &nodes, &edges);
        let empty = layered::<i64>(&[], &[]);
        assert!(empty.at.is_empty());
        check(&longest_path(&nodes, &edges), &nodes, &edges);
    }
}
