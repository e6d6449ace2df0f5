// Azure AI Search: the index spindex writes, with the semantic ranker on, Entra ID and API keys both accepted.

@description('Azure region of the search service.')
param location string

@description('Name of the search service (2-60 lower-case letters, digits and hyphens).')
param name string

@description('Pricing tier of the search service (the free tier has no semantic ranker).')
@allowed([
  'basic'
  'standard'
  'standard2'
  'standard3'
  'storage_optimized_l1'
  'storage_optimized_l2'
])
param sku string = 'basic'

@description('Semantic ranker plan: `free` (a monthly query allowance) or `standard` (billed per query).')
@allowed([
  'free'
  'standard'
])
param semanticSearch string = 'free'

@description('Number of replicas (query throughput and availability).')
@minValue(1)
@maxValue(12)
param replicaCount int = 1

@description('Number of partitions (index size and indexing throughput).')
@allowed([
  1
  2
  3
  4
  6
  12
])
param partitionCount int = 1

@description('Object id of the identity the jobs run as, granted data and index-management rights.')
param principalId string

@description('Tags applied to the search service.')
param tags object = {}

// Built-in role definitions (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var searchIndexDataContributor = '8ebe5a00-799e-43f5-93ac-243d3dce84a7'
var searchServiceContributor = '7ca78c08-252a-4471-8644-bb5ff32d4ba0'

resource search 'Microsoft.Search/searchServices@2023-11-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    replicaCount: replicaCount
    partitionCount: partitionCount
    hostingMode: 'default'
    publicNetworkAccess: 'enabled'
    semanticSearch: semanticSearch
    disableLocalAuth: false
    authOptions: {
      aadOrApiKey: {
        aadAuthFailureMode: 'http401WithBearerChallenge'
      }
    }
  }
}

// Documents: upload, merge and delete chunks.
resource indexDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, principalId, searchIndexDataContributor)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', searchIndexDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Indexes and aliases: create a physical index for a rebuild, swap the alias.
resource serviceContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, principalId, searchServiceContributor)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', searchServiceContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Endpoint of the search service, for SPINDEX_INDEX__ENDPOINT.')
output endpoint string = 'https://${search.name}.search.windows.net'

@description('Name of the search service.')
output name string = search.name
