package ecsemu

import "strings"

// region is one public ECS region as DescribeRegions lists it.
type region struct {
	ID        string
	LocalName string // Chinese, the default AcceptLanguage
	EnName    string
	JaName    string
	Endpoint  string
	// idPrefix starts the ids of resources in the region, as on ECS
	// (m-bp1… in Hangzhou, m-2ze… in Beijing).
	idPrefix string
}

// regions is a realistic list of public regions (order as the console shows it).
var regions = []region{
	{"cn-qingdao", "华北1（青岛）", "China (Qingdao)", "中国 (青島)", "ecs.aliyuncs.com", "m5e"},
	{"cn-beijing", "华北2（北京）", "China (Beijing)", "中国 (北京)", "ecs.aliyuncs.com", "2ze"},
	{"cn-zhangjiakou", "华北3（张家口）", "China (Zhangjiakou)", "中国 (張家口)", "ecs.cn-zhangjiakou.aliyuncs.com", "8vb"},
	{"cn-huhehaote", "华北5（呼和浩特）", "China (Hohhot)", "中国 (フフホト)", "ecs.cn-huhehaote.aliyuncs.com", "hp3"},
	{"cn-wulanchabu", "华北6（乌兰察布）", "China (Ulanqab)", "中国 (ウランチャブ)", "ecs.cn-wulanchabu.aliyuncs.com", "0jl"},
	{"cn-hangzhou", "华东1（杭州）", "China (Hangzhou)", "中国 (杭州)", "ecs.aliyuncs.com", "bp1"},
	{"cn-shanghai", "华东2（上海）", "China (Shanghai)", "中国 (上海)", "ecs.aliyuncs.com", "uf6"},
	{"cn-shenzhen", "华南1（深圳）", "China (Shenzhen)", "中国 (深セン)", "ecs.aliyuncs.com", "wz9"},
	{"cn-heyuan", "华南2（河源）", "China (Heyuan)", "中国 (河源)", "ecs.cn-heyuan.aliyuncs.com", "f8z"},
	{"cn-guangzhou", "华南3（广州）", "China (Guangzhou)", "中国 (広州)", "ecs.cn-guangzhou.aliyuncs.com", "7xv"},
	{"cn-chengdu", "西南1（成都）", "China (Chengdu)", "中国 (成都)", "ecs.cn-chengdu.aliyuncs.com", "2vc"},
	{"cn-hongkong", "中国香港", "China (Hong Kong)", "中国 (香港)", "ecs.aliyuncs.com", "j6c"},
	{"ap-northeast-1", "日本（东京）", "Japan (Tokyo)", "日本 (東京)", "ecs.ap-northeast-1.aliyuncs.com", "6we"},
	{"ap-northeast-2", "韩国（首尔）", "South Korea (Seoul)", "韓国 (ソウル)", "ecs.ap-northeast-2.aliyuncs.com", "mj7"},
	{"ap-southeast-1", "新加坡", "Singapore", "シンガポール", "ecs.aliyuncs.com", "t4n"},
	{"ap-southeast-3", "马来西亚（吉隆坡）", "Malaysia (Kuala Lumpur)", "マレーシア (クアラルンプール)", "ecs.ap-southeast-3.aliyuncs.com", "8ps"},
	{"ap-southeast-5", "印度尼西亚（雅加达）", "Indonesia (Jakarta)", "インドネシア (ジャカルタ)", "ecs.ap-southeast-5.aliyuncs.com", "k1a"},
	{"ap-southeast-6", "菲律宾（马尼拉）", "Philippines (Manila)", "フィリピン (マニラ)", "ecs.ap-southeast-6.aliyuncs.com", "5ts"},
	{"ap-southeast-7", "泰国（曼谷）", "Thailand (Bangkok)", "タイ (バンコク)", "ecs.ap-southeast-7.aliyuncs.com", "0ww"},
	{"ap-south-1", "印度（孟买）", "India (Mumbai)", "インド (ムンバイ)", "ecs.ap-south-1.aliyuncs.com", "a2d"},
	{"us-west-1", "美国（硅谷）", "US (Silicon Valley)", "米国 (シリコンバレー)", "ecs.aliyuncs.com", "rj9"},
	{"us-east-1", "美国（弗吉尼亚）", "US (Virginia)", "米国 (バージニア)", "ecs.aliyuncs.com", "0xi"},
	{"eu-central-1", "德国（法兰克福）", "Germany (Frankfurt)", "ドイツ (フランクフルト)", "ecs.eu-central-1.aliyuncs.com", "gw8"},
	{"eu-west-1", "英国（伦敦）", "UK (London)", "英国 (ロンドン)", "ecs.eu-west-1.aliyuncs.com", "d7o"},
	{"me-east-1", "阿联酋（迪拜）", "UAE (Dubai)", "UAE (ドバイ)", "ecs.me-east-1.aliyuncs.com", "eb3"},
}

var regionIndex = func() map[string]*region {
	m := make(map[string]*region, len(regions))
	for i := range regions {
		m[regions[i].ID] = &regions[i]
	}
	return m
}()

// findRegion returns the region with that id, or nil.
func findRegion(id string) *region { return regionIndex[id] }

// RegionIDs lists the ids of the emulated regions.
func RegionIDs() []string {
	ids := make([]string, len(regions))
	for i, r := range regions {
		ids[i] = r.ID
	}
	return ids
}

// mainland reports whether a region is in mainland China, the scope of the
// old "copy only between mainland regions" rule.
func mainland(id string) bool {
	return strings.HasPrefix(id, "cn-") && id != "cn-hongkong"
}
