//! The planner on partitioned tables (issue 22): steps partition by partition, and what is refused.

use super::*;

/// [`legacy_nullable_child`] with memberships partitioned by id into two partitions.
fn partitioned_child() -> Catalog {
    let mut cat = legacy_nullable_child();
    with_realms(&mut cat, "text");
    let m = &mut cat.tables[1];
    m.partitioned = true;
    m.partition_key = vec!["id".into()];
    m.partitions = ["memberships_a", "memberships_b"]
        .iter()
        .map(|n| crate::backfill::view::Partition {
            schema: "public".into(),
            name: n.to_string(),
            partitioned: false,
        })
        .collect();
    cat
}

#[test]
fn a_partitioned_child_is_filled_validated_and_keyed_partition_by_partition() {
    let p = plan(&partitioned_child(), &cfg("realm_scoped = [\"groups\"]")).unwrap();
    let on = |phase: Phase, table: &str| {
        p.steps
            .iter()
            .filter(|s| s.phase == phase && s.table == table)
            .count()
    };
    // The column and the trigger on the parent (PostgreSQL clones the trigger); the fill, the
    // check's validation, the keys NOT VALID and their validation per partition.
    assert_eq!(on(Phase::Column, "memberships"), 1);
    assert_eq!(on(Phase::Trigger, "memberships"), 1);
    assert_eq!(on(Phase::Fill, "memberships"), 0);
    for part in ["memberships_a", "memberships_b"] {
        assert_eq!(on(Phase::Fill, part), 1, "{part}");
        assert_eq!(on(Phase::NotNull, part), 1, "{part}");
        assert_eq!(on(Phase::RealmFk, part), 2, "{part}");
        assert_eq!(on(Phase::UniqueIndex, part), 1, "{part}");
        let s = p.steps.iter().find(|s| s.table == part).unwrap();
        assert_eq!(
            s.partition_of,
            Some(("public".to_string(), "memberships".to_string()))
        );
    }
    let fill = &p.steps[position(&p, "memberships_a", "fill realm_id")];
    assert!(
        fill.sql().starts_with("UPDATE public.memberships_a AS c"),
        "{}",
        fill.sql()
    );
    // A partitioned table takes no NOT VALID key: the partitions' validated keys are adopted.
    let realm_fk = &p.steps[position(&p, "memberships", "adopting")];
    assert_eq!(realm_fk.phase, Phase::RealmFk);
    assert!(!realm_fk.sql().contains("NOT VALID"), "{}", realm_fk.sql());
    assert!(
        position(&p, "memberships_b", "validate memberships_b_realm_id_fkey")
            < position(&p, "memberships", "adopting")
    );
    // The supporting index: on only the parent, built and attached per partition.
    let on_only = position(&p, "memberships", "ON ONLY");
    assert_eq!(p.steps[on_only].lock, Lock::Share);
    assert!(on_only < position(&p, "memberships_a", "memberships_a_group_id_realm_id_idx"));
    assert!(
        position(
            &p,
            "memberships_a",
            "ATTACH PARTITION public.memberships_a_group_id_realm_id_idx"
        ) < position(&p, "memberships_a", "memberships_a_group_id_realm_id_fkey")
    );
    // The key swap adopts each partition's concurrently built index, and checks that the
    // parent's index ended valid.
    let swap = p.steps[position(&p, "memberships", "swap the primary key")].sql();
    for needle in [
        "ALTER TABLE public.memberships DROP CONSTRAINT memberships_pkey;",
        "ALTER TABLE ONLY public.memberships ADD CONSTRAINT memberships_pkey PRIMARY KEY (id, realm_id)",
        "ALTER TABLE public.memberships_b ADD CONSTRAINT memberships_b_pkey PRIMARY KEY USING INDEX memberships_b_id_realm_id_key",
        "ALTER INDEX public.memberships_pkey ATTACH PARTITION public.memberships_b_pkey",
        "indisvalid",
    ] {
        assert!(swap.contains(needle), "{needle}\n{swap}");
    }
    assert!(
        !swap.contains("USING INDEX memberships_id_realm_id_key"),
        "{swap}"
    );
}

#[test]
fn partitioned_tables_off_the_new_key_or_nested_or_referenced_are_refused() {
    let c = cfg("realm_scoped = [\"groups\"]");
    let mut cat = partitioned_child();
    cat.tables[1].partition_key = vec!["group_id".into()];
    assert_eq!(
        plan(&cat, &c).unwrap_err().to_string(),
        "public.memberships is a partitioned table partitioned by (group_id), which is not within its new primary key (id, realm_id); backfill converts a partitioned table only when it is partitioned by id, by realm_id or by both: convert it by hand or leave it out with `exclude`"
    );
    let mut cat = partitioned_child();
    cat.tables[1].partition_key = vec!["realm_id".into()];
    cat.tables[1].columns.push(col("realm_id", "text", false));
    assert!(matches!(
        plan(&cat, &c),
        Err(PlanError::PartitionedByRealm { .. })
    ));
    let mut cat = partitioned_child();
    cat.tables[1].partitions[1].partitioned = true;
    assert_eq!(
        plan(&cat, &c).unwrap_err(),
        PlanError::SubPartitioned("public.memberships".into(), "public.memberships_b".into())
    );
    // groups partitioned: memberships' key references it; from a plain table it is moved in
    // groups' key swap, from a partitioned one refused.
    let mut cat = partitioned_child();
    cat.tables[1].partitioned = false;
    cat.tables[0].partitioned = true;
    cat.tables[0].partition_key = vec!["id".into()];
    let p = plan(&cat, &c).unwrap();
    let swap = p.steps[position(&p, "groups", "swap the primary key")].sql();
    assert!(
        swap.starts_with(
            "ALTER TABLE public.memberships DROP CONSTRAINT memberships_group_id_fkey;"
        ),
        "{swap}"
    );
    assert!(
        swap.ends_with("REFERENCES public.groups (id, realm_id) ON DELETE CASCADE NOT VALID"),
        "{swap}"
    );
    assert!(
        position(&p, "groups", "swap the primary key")
            < position(
                &p,
                "memberships",
                "validate memberships_group_id_realm_id_fkey"
            )
    );
    assert!(!titles(&p)
        .iter()
        .any(|t| t.contains("drop the single-column foreign key")));
    let mut cat = partitioned_child();
    cat.tables[0].partitioned = true;
    cat.tables[0].partition_key = vec!["id".into()];
    assert_eq!(
        plan(&cat, &c).unwrap_err(),
        PlanError::PartitionedReferenced(
            "public.groups".into(),
            "memberships_group_id_fkey on public.memberships".into()
        )
    );
}

#[test]
fn the_on_only_index_is_read_back_from_its_step() {
    assert_eq!(
        on_only_index("CREATE INDEX t_a_idx ON ONLY public.t (a)").as_deref(),
        Some("t_a_idx")
    );
    assert_eq!(
        on_only_index("CREATE INDEX \"T \"\"x\" ON ONLY public.t (a)").as_deref(),
        Some("T \"x")
    );
    assert_eq!(on_only_index("CREATE INDEX CONCURRENTLY i ON t (a)"), None);
    assert_eq!(on_only_index("ALTER TABLE t ADD COLUMN x int"), None);
}
