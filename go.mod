module github.com/sowerbt/sower

go 1.26.8
