//! The vector tiles the encoder writes, read back with an independent decoder (mvt-reader):
//! layer, extent, feature ids, properties and point coordinates.

use mvt_reader::feature::Value;
use mvt_reader::Reader;
use resi_core::tile::{encode_point_layer, tile_pixel, PointFeature, PropertyValue, EXTENT};

#[test]
fn a_tile_reads_back_with_an_mvt_decoder() {
    let features: Vec<PointFeature> = (0..300)
        .map(|i| PointFeature {
            id: Some(20_000_000 + i),
            x: (i as i32 * 13) % 4097,
            y: 4096 - (i as i32 * 7) % 4097,
            properties: [
                ("zpid", Some(PropertyValue::String((20_000_000 + i).to_string()))),
                ("price", Some(PropertyValue::Int(400_000 + (i as i64 % 5) * 1000))),
                ("bedrooms", (i % 3 != 0).then_some(PropertyValue::Int(i as i64 % 6))),
                ("confidence", Some(PropertyValue::Double(0.5 + (i % 4) as f64 / 8.0))),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        })
        .collect();
    let tile = encode_point_layer("listings", &features);
    let reader = Reader::new(tile).expect("a valid tile");
    assert_eq!(reader.get_layer_names().unwrap(), ["listings"]);
    let meta = reader.get_layer_metadata().unwrap();
    assert_eq!((meta[0].version, meta[0].extent, meta[0].feature_count), (2, EXTENT, 300));
    let decoded = reader.get_features(0).unwrap();
    for (want, got) in features.iter().zip(&decoded) {
        assert_eq!(got.id, want.id);
        // mvt-reader reads a POINT feature as a MultiPoint of its points: one here.
        let p = match &got.geometry {
            geo_types::Geometry::Point(p) => *p,
            geo_types::Geometry::MultiPoint(m) if m.0.len() == 1 => m.0[0],
            other => panic!("not one point: {other:?}"),
        };
        assert_eq!((p.x() as i32, p.y() as i32), (want.x, want.y));
        let props = got.properties.as_ref().unwrap();
        assert_eq!(props.len(), want.properties.len());
        for (key, value) in &want.properties {
            let expected = match value {
                PropertyValue::String(s) => Value::String(s.clone()),
                PropertyValue::Int(i) => Value::Int(*i),
                PropertyValue::Double(d) => Value::Double(*d),
            };
            assert_eq!(props[*key], expected, "{key} of {:?}", want.id);
        }
    }
}

#[test]
fn pixels_follow_web_mercator() {
    // Tile 12/957/1692 holds Katy, TX; its corners are its pixels (0,0) and (4096,4096).
    let b = resi_core::tile::tile_bounds(12, 957, 1692).unwrap();
    let mid_lon = (b.min_longitude + b.max_longitude) / 2.0;
    let (x, _) = tile_pixel(mid_lon, b.max_latitude, 12, 957, 1692);
    assert_eq!(x, 2048);
    // Latitude is not linear in mercator: the middle latitude is south of the middle pixel row.
    let (_, y) = tile_pixel(mid_lon, (b.min_latitude + b.max_latitude) / 2.0, 12, 957, 1692);
    assert!((2040..2060).contains(&y), "{y}");
}
