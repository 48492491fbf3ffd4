module rt
go 1.26
