-- Schema version 3: images' display names and labels (see catalog/src/labels.rs), one
-- record per image, apart from the image row so that a patch commit rewriting the image
-- never undoes a label written meanwhile.

CREATE TABLE image_labels (
    image bigint PRIMARY KEY REFERENCES images (id),
    record jsonb NOT NULL
);
