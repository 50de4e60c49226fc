//! Map tiles: `resi.tile_bounds(z, x, y)`, the aggregate `resi.listing_tile_layer(…)` and its
//! column form `resi.listing_tile_layer_of(…)` behind `resi.listing_tile(z, x, y) → bytea`
//! (sql/tiles.sql), over `resi_core::tile`.

use crate::consensus::aggregate_state_mut;
use crate::error::OrRaise;
use pgrx::datum::Internal;
use pgrx::pg_sys;
use pgrx::prelude::*;
use resi_core::tile::{encode_point_layer, tile_bounds as bounds, tile_pixel, PointFeature, PropertyValue};

const NAME: &str = "resi.listing_tile";

/// `resi.tile_bounds(z integer, x integer, y integer)`: the WGS84 area of an XYZ (slippy-map)
/// tile, one row; a point belongs to the tile when min <= coordinate < max. IMMUTABLE,
/// PARALLEL SAFE, STRICT. Errors 22023 for a zoom outside 0..30 or x/y outside 0..2^z-1.
#[pg_extern(immutable, parallel_safe, strict)]
fn tile_bounds(
    z: i32,
    x: i32,
    y: i32,
) -> TableIterator<
    'static,
    (name!(min_longitude, f64), name!(min_latitude, f64), name!(max_longitude, f64), name!(max_latitude, f64)),
> {
    let b = bounds(z, x, y).or_raise("resi.tile_bounds");
    TableIterator::once((b.min_longitude, b.min_latitude, b.max_longitude, b.max_latitude))
}

/// The features of one tile so far, and which tile they are in.
#[derive(Default)]
struct TileLayer {
    tile: Option<(i32, i32, i32)>,
    features: Vec<PointFeature>,
}

/// Transition of `resi.listing_tile_layer`: one listing as a point feature of tile (z, x, y)
/// (see [`feature`]). Rows without coordinates are skipped. Every row of a group must name the
/// same tile (22023). IMMUTABLE, PARALLEL SAFE, not strict.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
fn listing_tile_transition(
    mut state: Internal,
    zpid: Option<&str>,
    longitude: Option<f64>,
    latitude: Option<f64>,
    price: Option<i64>,
    bedrooms: Option<i32>,
    confidence: Option<f32>,
    z: Option<i32>,
    x: Option<i32>,
    y: Option<i32>,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Internal {
    // SAFETY: the transition value of listing_tile_layer is always a TileLayer.
    let layer = unsafe {
        aggregate_state_mut::<TileLayer>(
            &mut state,
            fcinfo,
            "resi.listing_tile_transition can only be called by resi.listing_tile_layer",
        )
    };
    let tile = required_tile(z, x, y);
    match layer.tile {
        None => {
            bounds(tile.0, tile.1, tile.2).or_raise(NAME);
            layer.tile = Some(tile);
        }
        Some(first) if first != tile => {
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!(
                    "{NAME}: one layer is one tile, got {}/{}/{} after {}/{}/{}",
                    tile.0, tile.1, tile.2, first.0, first.1, first.2
                )
            );
        }
        Some(_) => {}
    }
    layer.features.extend(feature(zpid, longitude, latitude, price, bedrooms, confidence, tile));
    state
}

/// Final of `resi.listing_tile_layer`: the tile's bytes, layer `listings`, extent 4096. NULL
/// for no rows; an empty bytea when no row had coordinates. IMMUTABLE, PARALLEL SAFE.
#[pg_extern(immutable, parallel_safe)]
fn listing_tile_final(state: Internal) -> Option<Vec<u8>> {
    // SAFETY: a TileLayer of this aggregate.
    let layer = unsafe { state.get::<TileLayer>() }?;
    Some(encode_point_layer("listings", &layer.features))
}

/// `resi.listing_tile_layer_of(zpids, longitudes, latitudes, prices, bedrooms, confidences, z,
/// x, y)`: the tile `resi.listing_tile_layer` makes of the listings given as columns, element i
/// of every array being listing i (array_aggs of the same rows, in the rows' order); a NULL
/// array is a column of NULLs. What `resi.listing_tile` calls: no aggregate state per row (a
/// portable aggregate's state is copied on every row). NULL when there is no listing (every
/// array NULL or empty). IMMUTABLE, PARALLEL SAFE, not strict; 22023 for arrays of different
/// lengths, a NULL z, x or y, or a tile that does not exist.
#[allow(clippy::too_many_arguments)]
#[pg_extern(immutable, parallel_safe)]
fn listing_tile_layer_of(
    zpids: Option<Array<&str>>,
    longitudes: Option<Array<f64>>,
    latitudes: Option<Array<f64>>,
    prices: Option<Array<i64>>,
    bedrooms: Option<Array<i32>>,
    confidences: Option<Array<f32>>,
    z: Option<i32>,
    x: Option<i32>,
    y: Option<i32>,
) -> Option<Vec<u8>> {
    let lengths = [
        zpids.as_ref().map(Array::len),
        longitudes.as_ref().map(Array::len),
        latitudes.as_ref().map(Array::len),
        prices.as_ref().map(Array::len),
        bedrooms.as_ref().map(Array::len),
        confidences.as_ref().map(Array::len),
    ];
    let listings = lengths.iter().flatten().copied().max().filter(|&n| n > 0)?;
    if lengths.iter().flatten().any(|&n| n != listings) {
        let lengths: Vec<String> = lengths.iter().map(|n| n.map_or("NULL".to_owned(), |n| n.to_string())).collect();
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{NAME}: the arrays must have one element per listing, got lengths {}", lengths.join(", "))
        );
    }
    let tile = required_tile(z, x, y);
    bounds(tile.0, tile.1, tile.2).or_raise(NAME);
    let element = |i: usize| {
        feature(
            zpids.as_ref().and_then(|a| a.get(i).flatten()),
            longitudes.as_ref().and_then(|a| a.get(i).flatten()),
            latitudes.as_ref().and_then(|a| a.get(i).flatten()),
            prices.as_ref().and_then(|a| a.get(i).flatten()),
            bedrooms.as_ref().and_then(|a| a.get(i).flatten()),
            confidences.as_ref().and_then(|a| a.get(i).flatten()),
            tile,
        )
    };
    let features: Vec<PointFeature> = (0..listings).filter_map(element).collect();
    Some(encode_point_layer("listings", &features))
}

/// The tile (z, x, y); 22023 when any is NULL.
fn required_tile(z: Option<i32>, x: Option<i32>, y: Option<i32>) -> (i32, i32, i32) {
    let (Some(z), Some(x), Some(y)) = (z, x, y) else {
        ereport!(ERROR, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("{NAME}: z, x and y are required"));
    };
    (z, x, y)
}

/// One listing as a point feature of `tile` (an existing tile) with properties zpid, price,
/// bedrooms and confidence (NULLs left out; the feature id is the zpid when it is a number);
/// None without finite coordinates.
fn feature(
    zpid: Option<&str>,
    longitude: Option<f64>,
    latitude: Option<f64>,
    price: Option<i64>,
    bedrooms: Option<i32>,
    confidence: Option<f32>,
    (z, x, y): (i32, i32, i32),
) -> Option<PointFeature> {
    let (longitude, latitude) = (longitude?, latitude?);
    if !longitude.is_finite() || !latitude.is_finite() {
        return None;
    }
    let (px, py) = tile_pixel(longitude, latitude, z, x, y);
    let mut properties = Vec::with_capacity(4);
    if let Some(zpid) = zpid {
        properties.push(("zpid", PropertyValue::String(zpid.to_owned())));
    }
    if let Some(price) = price {
        properties.push(("price", PropertyValue::Int(price)));
    }
    if let Some(bedrooms) = bedrooms {
        properties.push(("bedrooms", PropertyValue::Int(i64::from(bedrooms))));
    }
    if let Some(confidence) = confidence {
        properties.push(("confidence", PropertyValue::Double(f64::from(confidence))));
    }
    let id = zpid.filter(|z| !z.is_empty() && z.bytes().all(|b| b.is_ascii_digit())).and_then(|z| z.parse().ok());
    Some(PointFeature { id, x: px, y: py, properties })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn tile_bounds_of_the_world_and_of_a_city() {
        let (min_lon, max_lon) =
            Spi::get_two::<f64, f64>("SELECT min_longitude, max_longitude FROM resi.tile_bounds(0, 0, 0)").unwrap();
        assert_eq!((min_lon, max_lon), (Some(-180.0), Some(180.0)));
        let inside = Spi::get_one::<bool>(
            "SELECT -95.82 >= min_longitude AND -95.82 < max_longitude AND 29.79 >= min_latitude AND 29.79 < max_latitude
               FROM resi.tile_bounds(10, 239, 423)",
        )
        .unwrap();
        assert_eq!(inside, Some(true));
    }

    #[pg_test(error = "resi.tile_bounds: tile 3/8/0 does not exist: x and y must be between 0 and 7")]
    fn tiles_outside_the_grid_are_errors() {
        Spi::run("SELECT * FROM resi.tile_bounds(3, 8, 0)").unwrap();
    }

    #[pg_test(error = "resi.listing_tile: one layer is one tile, got 3/1/1 after 3/1/2")]
    fn one_layer_is_one_tile() {
        Spi::run("SELECT resi.listing_tile_layer('1', 0, 0, 1, 1, 1, 3, 1, v) FROM (VALUES (2), (1)) t(v)").unwrap();
    }
}
