//! Rank and world size default to torchrun's RANK / WORLD_SIZE (its own test binary: it
//! sets process environment variables).

use s3dlio_loader::LoaderOptions;
use s3dlio_store_core::ErrorKind;

#[test]
fn rank_and_world_size_come_from_the_environment() {
    std::env::set_var("RANK", "3");
    std::env::set_var("WORLD_SIZE", "8");
    let o = LoaderOptions::default();
    assert_eq!(o.resolved_rank().unwrap(), (3, 8));
    // Explicit fields win.
    let o = LoaderOptions {
        rank: Some(1),
        world_size: Some(2),
        ..LoaderOptions::default()
    };
    assert_eq!(o.resolved_rank().unwrap(), (1, 2));
    // A malformed variable is an error, not silently rank 0.
    std::env::set_var("RANK", "three");
    let e = LoaderOptions::default().resolved_rank().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("RANK"), "{e}");
    std::env::remove_var("RANK");
    std::env::remove_var("WORLD_SIZE");
    assert_eq!(LoaderOptions::default().resolved_rank().unwrap(), (0, 1));
}
