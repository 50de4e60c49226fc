//! Mapbox Vector Tiles of listings (what `resi.listing_tile(z, x, y)` returns): web-mercator
//! tile arithmetic and an encoder of one layer of point features, per the Mapbox Vector Tile
//! specification 2.1 (protobuf, written by hand: a tile is a handful of message types).
//!
//! Tiles are numbered as in every slippy map (XYZ: x from the antimeridian eastwards, y from
//! the north). A feature's position is its pixel in the tile's `EXTENT`×`EXTENT` grid.

use crate::error::{Error, Result};
use std::collections::HashMap;

/// The grid of a tile: 4096, the specification's default and what map renderers expect.
pub const EXTENT: u32 = 4096;

/// Deepest zoom accepted: 2^30 tiles a side still fit an `i32` tile number.
pub const MAX_ZOOM: i32 = 30;

/// Latitude of web mercator's edge, about 85.0511°: tiles cover no more.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_59;

/// A tile's area in WGS84 degrees; points with `min <= coordinate < max` belong to it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub min_longitude: f64,
    pub min_latitude: f64,
    pub max_longitude: f64,
    pub max_latitude: f64,
}

/// The bounds of tile (z, x, y). Errors (`InvalidParameter`) for a zoom outside 0..=30 or a
/// tile number outside 0..2^z.
pub fn tile_bounds(z: i32, x: i32, y: i32) -> Result<Bounds> {
    check_tile(z, x, y)?;
    let n = f64::from(1u32 << z);
    let longitude = |x: f64| x / n * 360.0 - 180.0;
    let latitude = |y: f64| (std::f64::consts::PI * (1.0 - 2.0 * y / n)).sinh().atan().to_degrees();
    Ok(Bounds {
        min_longitude: longitude(f64::from(x)),
        min_latitude: latitude(f64::from(y) + 1.0),
        max_longitude: longitude(f64::from(x) + 1.0),
        max_latitude: latitude(f64::from(y)),
    })
}

fn check_tile(z: i32, x: i32, y: i32) -> Result<()> {
    if !(0..=MAX_ZOOM).contains(&z) {
        return Err(Error::invalid_parameter(format!("tile zoom must be between 0 and {MAX_ZOOM}, got {z}")));
    }
    let n = 1i64 << z;
    if !(0..n).contains(&i64::from(x)) || !(0..n).contains(&i64::from(y)) {
        return Err(Error::invalid_parameter(format!(
            "tile {z}/{x}/{y} does not exist: x and y must be between 0 and {}",
            n - 1
        )));
    }
    Ok(())
}

/// The pixel of (longitude, latitude) in tile (z, x, y), in 0..=EXTENT for a point inside the
/// tile (rounded to the nearest pixel; a point on the tile's east or south edge rounds to
/// EXTENT, which the specification allows).
pub fn tile_pixel(longitude: f64, latitude: f64, z: i32, x: i32, y: i32) -> (i32, i32) {
    let n = f64::from(1u32 << z.clamp(0, MAX_ZOOM));
    let extent = f64::from(EXTENT);
    let world_x = (longitude + 180.0) / 360.0 * n;
    let phi = latitude.clamp(-MAX_LATITUDE, MAX_LATITUDE).to_radians();
    let world_y = (1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / std::f64::consts::PI) / 2.0 * n;
    let pixel = |world: f64, tile: i32| ((world - f64::from(tile)) * extent).round() as i32;
    (pixel(world_x, x), pixel(world_y, y))
}

/// A property value of a feature.
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyValue {
    String(String),
    Int(i64),
    Double(f64),
}

impl PropertyValue {
    /// Values are shared in the layer's table: equal values (doubles by their bits) once.
    fn table_key(&self) -> (u8, Vec<u8>) {
        match self {
            PropertyValue::String(s) => (1, s.as_bytes().to_vec()),
            PropertyValue::Int(i) => (2, i.to_le_bytes().to_vec()),
            PropertyValue::Double(d) => (3, d.to_bits().to_le_bytes().to_vec()),
        }
    }
}

/// One point feature: its id (the zpid, when numeric), pixel, and properties (NULLs left out).
#[derive(Clone, Debug, PartialEq)]
pub struct PointFeature {
    pub id: Option<u64>,
    pub x: i32,
    pub y: i32,
    pub properties: Vec<(&'static str, PropertyValue)>,
}

/// Encode one layer of point features as a whole tile (the bytes of a `.mvt`/`.pbf`). No
/// features: an empty tile (zero bytes), which renderers accept.
pub fn encode_point_layer(name: &str, features: &[PointFeature]) -> Vec<u8> {
    if features.is_empty() {
        return Vec::new();
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut key_index: HashMap<&str, u32> = HashMap::new();
    let mut values: Vec<&PropertyValue> = Vec::new();
    let mut value_index: HashMap<(u8, Vec<u8>), u32> = HashMap::new();
    let mut layer = Vec::new();
    field_varint(&mut layer, 15, 2); // version
    field_bytes(&mut layer, 1, name.as_bytes());
    for (i, feature) in features.iter().enumerate() {
        crate::interrupt::check_every(i);
        let mut tags = Vec::new();
        for (key, value) in &feature.properties {
            let k = *key_index.entry(key).or_insert_with(|| {
                keys.push(key);
                keys.len() as u32 - 1
            });
            let v = *value_index.entry(value.table_key()).or_insert_with(|| {
                values.push(value);
                values.len() as u32 - 1
            });
            varint(&mut tags, u64::from(k));
            varint(&mut tags, u64::from(v));
        }
        let mut geometry = Vec::new();
        varint(&mut geometry, 9); // MoveTo, one point
        varint(&mut geometry, u64::from(zigzag(feature.x)));
        varint(&mut geometry, u64::from(zigzag(feature.y)));
        let mut message = Vec::new();
        if let Some(id) = feature.id {
            field_varint(&mut message, 1, id);
        }
        if !tags.is_empty() {
            field_bytes(&mut message, 2, &tags);
        }
        field_varint(&mut message, 3, 1); // GeomType POINT
        field_bytes(&mut message, 4, &geometry);
        field_bytes(&mut layer, 2, &message);
    }
    for key in keys {
        field_bytes(&mut layer, 3, key.as_bytes());
    }
    for value in values {
        let mut message = Vec::new();
        match value {
            PropertyValue::String(s) => field_bytes(&mut message, 1, s.as_bytes()),
            PropertyValue::Double(d) => {
                key(&mut message, 3, 1); // fixed64
                message.extend_from_slice(&d.to_le_bytes());
            }
            PropertyValue::Int(i) => field_varint(&mut message, 4, *i as u64), // int64: two's complement
        }
        field_bytes(&mut layer, 4, &message);
    }
    field_varint(&mut layer, 5, u64::from(EXTENT));
    let mut tile = Vec::with_capacity(layer.len() + 8);
    field_bytes(&mut tile, 3, &layer);
    tile
}

fn zigzag(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(out, u64::from(field << 3 | wire_type));
}

fn field_varint(out: &mut Vec<u8>, field: u32, n: u64) {
    key(out, field, 0);
    varint(out, n);
}

fn field_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_of_known_tiles() {
        let world = tile_bounds(0, 0, 0).unwrap();
        assert_eq!((world.min_longitude, world.max_longitude), (-180.0, 180.0));
        assert!((world.max_latitude - MAX_LATITUDE).abs() < 1e-9 && (world.min_latitude + MAX_LATITUDE).abs() < 1e-9);
        // Katy, TX (29.79 N, 95.82 W) is in tile 10/239/423.
        let katy = tile_bounds(10, 239, 423).unwrap();
        assert!(katy.min_longitude <= -95.82 && -95.82 < katy.max_longitude, "{katy:?}");
        assert!(katy.min_latitude <= 29.79 && 29.79 < katy.max_latitude, "{katy:?}");
        let (px, py) = tile_pixel(-95.82, 29.79, 10, 239, 423);
        assert!((0..4096).contains(&px) && (0..4096).contains(&py), "{px} {py}");
        // The corners of a tile are its pixels (0, 0) and (4096, 4096).
        assert_eq!(tile_pixel(katy.min_longitude, katy.max_latitude, 10, 239, 423), (0, 0));
        assert_eq!(tile_pixel(katy.max_longitude, katy.min_latitude, 10, 239, 423), (4096, 4096));
    }

    #[test]
    fn tiles_that_do_not_exist_are_errors() {
        for (z, x, y) in [(-1, 0, 0), (31, 0, 0), (1, 2, 0), (1, 0, 2), (3, -1, 0)] {
            let e = tile_bounds(z, x, y).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::InvalidParameter, "{z}/{x}/{y}");
        }
        assert!(tile_bounds(30, (1 << 30) - 1, 0).is_ok());
    }

    #[test]
    fn protobuf_primitives() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        assert_eq!([zigzag(0), zigzag(-1), zigzag(1), zigzag(-2), zigzag(2047)], [0, 1, 2, 3, 4094]);
        assert!(encode_point_layer("listings", &[]).is_empty());
    }
}
