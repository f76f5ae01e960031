package cache

// SpillDirForTest returns the directory c spills into ("" if none).
func (c *Cache) SpillDirForTest() string {
	if c.spill == nil {
		return ""
	}
	return c.spill.dir
}
