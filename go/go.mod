module writelane

go 1.22
